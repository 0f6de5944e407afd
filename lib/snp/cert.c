/* SPDX-License-Identifier: Apache-2.0 */
/* VCEK / VLEK certificate extensions (AMD "Versioned Chip Endorsement Key (VCEK) Certificate and
 * KDS Interface Specification", pub. 57230, table "VCEK Certificate Extensions"). All live under
 * 1.3.6.1.4.1.3704.1: .1 structVersion, .2 productName (IA5String), .3.1 blSPL, .3.2 teeSPL,
 * .3.3 snpSPL, .3.4-.3.7 reserved SPLs, .3.8 ucodeSPL, .3.9 fmcSPL (Turin) (INTEGERs), .4 hwID
 * (the chip ID bytes), .5 cspID (VLEK: the cloud provider). */
#include <openssl/err.h>
#include <openssl/pem.h>

#include "basic/cleanup-openssl.h"
#include "snp/snp-internal.h"

#define AMD_OID_PREFIX "1.3.6.1.4.1.3704.1."

int snp_x509_load(const uint8_t *data, size_t len, X509 **ret) {
        if (!data || len == 0 || len > SNP_CERT_MAX_SIZE)
                return -EBADMSG;
        static const char pem_marker[] = "-----BEGIN";
        bool is_pem = false;
        for (size_t i = 0; i + sizeof(pem_marker) - 1 <= len && i < 64; i++)
                if (memcmp(data + i, pem_marker, sizeof(pem_marker) - 1) == 0) {
                        is_pem = true;
                        break;
                }

        _cleanup_(X509_freep) X509 *cert = NULL;
        if (is_pem) {
                _cleanup_(BIO_freep) BIO *bio = BIO_new_mem_buf(data, (int) len);
                if (!bio)
                        return -ENOMEM;
                cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
                if (!cert) {
                        ERR_clear_error();
                        return -EBADMSG;
                }
                /* Exactly one certificate: a second one would be silently ignored otherwise. */
                _cleanup_(X509_freep) X509 *extra = PEM_read_bio_X509(bio, NULL, NULL, NULL);
                ERR_clear_error();
                if (extra)
                        return -EBADMSG;
        } else {
                const unsigned char *p = data;
                cert = d2i_X509(NULL, &p, (long) len);
                if (!cert || p != data + len) {
                        ERR_clear_error();
                        return -EBADMSG;
                }
        }
        *ret = TAKE_PTR(cert);
        return 0;
}

enum snp_product snp_product_from_name(const char *name) {
        static const struct {
                const char *name;
                enum snp_product product;
        } names[] = {
                { "Milan", SNP_PRODUCT_MILAN },
                { "Genoa", SNP_PRODUCT_GENOA },
                { "Turin", SNP_PRODUCT_TURIN },
        };
        /* KDS names: "Milan-B0", "Milan-B1", "Genoa", "Turin": the family, optionally "-<stepping>". */
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                size_t n = strlen(names[i].name);
                if (strncmp(name, names[i].name, n) == 0 && (name[n] == 0 || name[n] == '-'))
                        return names[i].product;
        }
        return SNP_PRODUCT_UNKNOWN;
}

/* An SPL extension: DER INTEGER 0..255 filling the whole extnValue. */
static int parse_spl(const ASN1_OCTET_STRING *os, uint8_t *ret) {
        const unsigned char *p = ASN1_STRING_get0_data(os);
        long n = ASN1_STRING_length(os);
        ASN1_INTEGER *i = d2i_ASN1_INTEGER(NULL, &p, n);
        if (!i) {
                ERR_clear_error();
                return -EBADMSG;
        }
        int64_t value = -1;
        bool whole = p == ASN1_STRING_get0_data(os) + n;
        int ok = ASN1_INTEGER_get_int64(&value, i);
        ASN1_INTEGER_free(i);
        ERR_clear_error();
        if (!whole || ok != 1 || value < 0 || value > 255)
                return -EBADMSG;
        *ret = (uint8_t) value;
        return 0;
}

/* A string extension: DER IA5String (productName) or UTF8String (cspID) filling the extnValue,
 * with a short or one-byte long-form length (X.690 §8.1.3). */
static int parse_string(const ASN1_OCTET_STRING *os, char *buf, size_t size) {
        const unsigned char *p = ASN1_STRING_get0_data(os);
        size_t n = (size_t) ASN1_STRING_length(os), hdr, len;
        if (n < 2 || (p[0] != V_ASN1_IA5STRING && p[0] != V_ASN1_UTF8STRING))
                return -EBADMSG;
        if (p[1] < 0x80) {
                hdr = 2;
                len = p[1];
        } else if (p[1] == 0x81 && n >= 3 && p[2] >= 0x80) {
                hdr = 3;
                len = p[2];
        } else
                return -EBADMSG;
        if (n - hdr != len || len >= size)
                return -EBADMSG;
        for (size_t i = 0; i < len; i++)
                if (p[hdr + i] < 0x20 || p[hdr + i] > 0x7E)
                        return -EBADMSG;
        memcpy(buf, p + hdr, len);
        buf[len] = 0;
        return 0;
}

/* hwID: real KDS VCEKs carry the raw chip ID (64 bytes; Turin 8) as the extnValue; some test
 * certificates (trustee test-vcek-invalid-new.der) wrap it in an OCTET STRING. Accept both. */
static int parse_hwid(const ASN1_OCTET_STRING *os, uint8_t *buf, size_t *ret_len) {
        const unsigned char *p = ASN1_STRING_get0_data(os);
        size_t n = (size_t) ASN1_STRING_length(os);
        if (n == 64 || n == 8) {
                memcpy(buf, p, n);
                *ret_len = n;
                return 0;
        }
        if ((n == 66 || n == 10) && p[0] == V_ASN1_OCTET_STRING && p[1] == n - 2) {
                memcpy(buf, p + 2, n - 2);
                *ret_len = n - 2;
                return 0;
        }
        return -EBADMSG;
}

enum {
        SEEN_PRODUCT = 1u << 0,
        SEEN_BL = 1u << 1,
        SEEN_TEE = 1u << 2,
        SEEN_SNP = 1u << 3,
        SEEN_UCODE = 1u << 4,
        SEEN_FMC = 1u << 5,
        SEEN_HWID = 1u << 6,
        SEEN_CSP = 1u << 7,
        SEEN_STRUCT_VERSION = 1u << 8,
};

int snp_cert_info_from_x509(X509 *cert, struct snp_cert_info *ret, struct snp_verdict *v) {
        struct snp_cert_info info = {};
        unsigned seen = 0;
        int count = X509_get_ext_count(cert);
        for (int idx = 0; idx < count; idx++) {
                X509_EXTENSION *ext = X509_get_ext(cert, idx);
                char oid[80];
                int n = OBJ_obj2txt(oid, sizeof(oid), X509_EXTENSION_get_object(ext), 1);
                if (n <= 0 || (size_t) n >= sizeof(oid) || strncmp(oid, AMD_OID_PREFIX, strlen(AMD_OID_PREFIX)) != 0)
                        continue;
                const char *sub = oid + strlen(AMD_OID_PREFIX);
                const ASN1_OCTET_STRING *data = X509_EXTENSION_get_data(ext);
                unsigned bit;
                int r;
                if (streq(sub, "1")) {
                        uint8_t sv;
                        bit = SEEN_STRUCT_VERSION;
                        r = parse_spl(data, &sv);
                } else if (streq(sub, "2")) {
                        bit = SEEN_PRODUCT;
                        r = parse_string(data, info.product_name, sizeof(info.product_name));
                } else if (streq(sub, "3.1")) {
                        bit = SEEN_BL;
                        r = parse_spl(data, &info.tcb.bootloader);
                } else if (streq(sub, "3.2")) {
                        bit = SEEN_TEE;
                        r = parse_spl(data, &info.tcb.tee);
                } else if (streq(sub, "3.3")) {
                        bit = SEEN_SNP;
                        r = parse_spl(data, &info.tcb.snp);
                } else if (streq(sub, "3.8")) {
                        bit = SEEN_UCODE;
                        r = parse_spl(data, &info.tcb.microcode);
                } else if (streq(sub, "3.9")) {
                        bit = SEEN_FMC;
                        r = parse_spl(data, &info.tcb.fmc);
                } else if (streq(sub, "4")) {
                        bit = SEEN_HWID;
                        r = parse_hwid(data, info.hwid, &info.hwid_len);
                } else if (streq(sub, "5")) {
                        bit = SEEN_CSP;
                        r = parse_string(data, info.csp_id, sizeof(info.csp_id));
                } else
                        continue; /* reserved SPLs 3.4-3.7 and future extensions */
                if (seen & bit)
                        return snp_fail(v, SNP_REASON_CERT_MALFORMED, "extension %s appears twice", oid);
                if (r < 0)
                        return snp_fail(v, SNP_REASON_CERT_MALFORMED, "extension %s is malformed", oid);
                seen |= bit;
        }

        if (!(seen & SEEN_PRODUCT))
                return snp_fail(v, SNP_REASON_CERT_MALFORMED, "extension " AMD_OID_PREFIX "2 (productName) missing");
        info.product = snp_product_from_name(info.product_name);
        if (info.product == SNP_PRODUCT_UNKNOWN)
                return snp_fail(v, SNP_REASON_CERT_MALFORMED, "productName '%s' is not Milan, Genoa or Turin",
                                info.product_name);
        static const struct {
                unsigned bit;
                const char *name;
        } required[] = {
                { SEEN_BL, "3.1 (blSPL)" },
                { SEEN_TEE, "3.2 (teeSPL)" },
                { SEEN_SNP, "3.3 (snpSPL)" },
                { SEEN_UCODE, "3.8 (ucodeSPL)" },
        };
        for (size_t i = 0; i < ELEMENTSOF(required); i++)
                if (!(seen & required[i].bit))
                        return snp_fail(v, SNP_REASON_CERT_MALFORMED, "extension " AMD_OID_PREFIX "%s missing",
                                        required[i].name);
        if (info.product == SNP_PRODUCT_TURIN) {
                if (!(seen & SEEN_FMC))
                        return snp_fail(v, SNP_REASON_CERT_MALFORMED,
                                        "extension " AMD_OID_PREFIX "3.9 (fmcSPL) missing on a Turin certificate");
                info.tcb.has_fmc = true;
                if (info.hwid_len != 0 && info.hwid_len != 8)
                        return snp_fail(v, SNP_REASON_CERT_MALFORMED, "hwID is %zu bytes, Turin uses 8", info.hwid_len);
        } else {
                info.tcb.fmc = 0;
                if (info.hwid_len != 0 && info.hwid_len != 64)
                        return snp_fail(v, SNP_REASON_CERT_MALFORMED, "hwID is %zu bytes, %s uses 64", info.hwid_len,
                                        snp_product_to_string(info.product));
        }
        info.has_csp_id = seen & SEEN_CSP;
        *ret = info;
        snp_verdict_set(v, SNP_REASON_OK, NULL);
        return 0;
}

int snp_cert_info_parse(const uint8_t *data, size_t len, struct snp_cert_info *ret, struct snp_verdict *v) {
        _cleanup_(X509_freep) X509 *cert = NULL;
        if (!ret)
                return snp_fail(v, SNP_REASON_INVALID_ARGUMENT, "no output");
        int r = snp_x509_load(data, len, &cert);
        if (r == -ENOMEM)
                return snp_fail(v, SNP_REASON_INTERNAL, "out of memory");
        if (r < 0)
                return snp_fail(v, SNP_REASON_CERT_MALFORMED, "not one DER or PEM certificate of at most %u bytes",
                                SNP_CERT_MAX_SIZE);
        return snp_cert_info_from_x509(cert, ret, v);
}
