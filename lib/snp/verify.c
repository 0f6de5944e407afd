/* SPDX-License-Identifier: Apache-2.0 */
/* SEV-SNP report verification: pinned ARK -> ASK/ASVK -> VCEK/VLEK -> report.
 *
 * All AMD CA certificates are RSA-4096 signed with RSASSA-PSS (SHA-384, MGF1-SHA-384, salt 48);
 * OpenSSL's X509_verify() follows the algorithm parameters in the certificate. The chain is fixed
 * (three levels, one root per product), so it is checked explicitly rather than with an
 * X509_STORE: that gives each failure its own reason and avoids path building on outside input.
 * The report signature is ECDSA P-384 over SHA-384(report[0x000:0x2A0]) with r and s stored
 * little-endian, 72 bytes each (ABI spec "Signature Format" for ECDSA P-384 with SHA-384). */
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>

#include "basic/cleanup-openssl.h"
#include "snp/snp-internal.h"

/* amd-roots/FINGERPRINTS.md: SHA-256 of the DER ARK certificates as served by AMD KDS
 * (byte-identical in go-sev-guest, virtee/sev and the vendors' test data). */
static const struct {
        enum snp_product product;
        uint8_t sha256[32];
} ark_pins[] = {
        { SNP_PRODUCT_MILAN, /* ARK-Milan, serial 0x10000, 2020-10-22..2045-10-22 */
          { 0x69, 0xd0, 0x63, 0xb4, 0x53, 0x44, 0xd2, 0x6a, 0x2e, 0x94, 0xe1, 0xf4, 0x21, 0x0d, 0xe4, 0x9e,
            0xf5, 0x55, 0x30, 0x82, 0x87, 0xd4, 0xc1, 0x74, 0x44, 0x5c, 0x95, 0x63, 0x9a, 0x54, 0x0b, 0xcd } },
        { SNP_PRODUCT_GENOA, /* ARK-Genoa, serial 0x20000, 2022-01-26..2047-01-26 */
          { 0x4c, 0x65, 0x98, 0xd1, 0x9c, 0x18, 0x71, 0x9c, 0x5d, 0xfd, 0x4a, 0x7d, 0x33, 0x5f, 0x67, 0x4e,
            0x5b, 0xfe, 0x1d, 0x8f, 0x80, 0x0c, 0xea, 0x2c, 0xf2, 0x70, 0xc1, 0x0d, 0x10, 0x3d, 0xb2, 0xf1 } },
        { SNP_PRODUCT_TURIN, /* ARK-Turin, serial 0x30000, 2023-05-15..2048-05-15 */
          { 0x1f, 0x08, 0x41, 0x61, 0xa4, 0x4b, 0xb6, 0xd9, 0x37, 0x78, 0xa9, 0x04, 0x87, 0x7d, 0x48, 0x19,
            0xca, 0xfa, 0x5d, 0x05, 0xef, 0x41, 0x93, 0xb2, 0xde, 0xd9, 0xdd, 0x9c, 0x73, 0xdd, 0x3f, 0x6a } },
};

enum snp_product snp_ark_pinned(const uint8_t sha256[32]) {
        for (size_t i = 0; i < ELEMENTSOF(ark_pins); i++)
                if (ct_memeq(sha256, 32, ark_pins[i].sha256, 32))
                        return ark_pins[i].product;
        return SNP_PRODUCT_UNKNOWN;
}

/* A certificate's validity window, kept for the cheap per-report time check. */
struct validity {
        char name[24]; /* "ARK", "ASK", "ASVK", "VCEK", "VLEK" */
        time_t not_before, not_after;
};

struct snp_chain {
        enum snp_product product;
        enum snp_signer_kind kind;
        X509 *ark;
        X509 *ask;
        char ask_cn[64];
        struct validity validity[2];
};

struct snp_signer {
        enum snp_product product;
        enum snp_signer_kind kind;
        struct snp_cert_info info;
        EVP_PKEY *key;
        EVP_PKEY_CTX *ctx; /* verify-initialised once, reused for every report */
        EVP_MD *sha384;
        struct validity validity[3]; /* ARK, ASK/ASVK, VCEK/VLEK */
};

static int asn1_time_to_time(const ASN1_TIME *t, time_t *ret) {
        struct tm tm = {};
        if (!t || ASN1_TIME_to_tm(t, &tm) != 1)
                return -EBADMSG;
        time_t r = timegm(&tm);
        if (r == (time_t) -1)
                return -EBADMSG;
        *ret = r;
        return 0;
}

static const char *format_time(time_t t, char *buf, size_t size) {
        struct tm tm;
        if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                (void) snprintf(buf, size, "@%lld", (long long) t);
        return buf;
}

static int validity_from_x509(X509 *cert, const char *name, struct validity *ret) {
        struct validity val = {};
        (void) snprintf(val.name, sizeof(val.name), "%s", name);
        if (asn1_time_to_time(X509_get0_notBefore(cert), &val.not_before) < 0 ||
            asn1_time_to_time(X509_get0_notAfter(cert), &val.not_after) < 0)
                return -EBADMSG;
        *ret = val;
        return 0;
}

static time_t options_time(const struct snp_options *opts) {
        return opts && opts->time_set ? opts->time : time(NULL);
}

static int check_validity(const struct validity *val, size_t n, time_t now, struct snp_verdict *v) {
        char a[32], b[32];
        for (size_t i = 0; i < n; i++) {
                if (now < val[i].not_before)
                        return snp_fail(v, SNP_REASON_CERT_NOT_YET_VALID, "%s: not valid before %s (verification time %s)",
                                        val[i].name, format_time(val[i].not_before, a, sizeof(a)),
                                        format_time(now, b, sizeof(b)));
                if (now > val[i].not_after)
                        return snp_fail(v, SNP_REASON_CERT_EXPIRED, "%s: expired %s (verification time %s)", val[i].name,
                                        format_time(val[i].not_after, a, sizeof(a)), format_time(now, b, sizeof(b)));
        }
        return 0;
}

static void subject_cn(X509 *cert, char *buf, size_t size) {
        buf[0] = 0;
        int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, buf, (int) size);
        if (n < 0) {
                buf[0] = 0;
                ERR_clear_error();
        }
}

static void fingerprint_hex(const uint8_t md[32], char out[65]) {
        for (size_t i = 0; i < 32; i++)
                (void) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* Chain */

snp_chain *snp_chain_free(snp_chain *c) {
        if (!c)
                return NULL;
        X509_free(c->ark);
        X509_free(c->ask);
        free(c);
        return NULL;
}

enum snp_product snp_chain_product(const snp_chain *c) {
        return c->product;
}

enum snp_signer_kind snp_chain_signer_kind(const snp_chain *c) {
        return c->kind;
}

#define CHAIN_MAX_CERTS 2

/* root_sha256 == NULL: the built-in pins; otherwise exactly that root, for root_product. */
static int chain_new(const uint8_t *pem, size_t len, const struct snp_options *opts, enum snp_product root_product,
                     const uint8_t *root_sha256, snp_chain **ret, struct snp_verdict *v) {
        if (!pem || !ret)
                return snp_fail(v, SNP_REASON_INVALID_ARGUMENT, "no chain");
        if (len == 0 || len > SNP_CHAIN_MAX_SIZE)
                return snp_fail(v, SNP_REASON_CHAIN_MALFORMED, "chain is %zu bytes, expected 1..%u", len,
                                SNP_CHAIN_MAX_SIZE);

        /* Declared before the first `goto out` so its cleanup never sees an uninitialised value. */
        _cleanup_free_ snp_chain *c = NULL;
        X509 *certs[CHAIN_MAX_CERTS + 1] = {};
        size_t n = 0;
        int r = 0;
        {
                _cleanup_(BIO_freep) BIO *bio = BIO_new_mem_buf(pem, (int) len);
                if (!bio)
                        return snp_fail(v, SNP_REASON_INTERNAL, "out of memory");
                while (n < ELEMENTSOF(certs)) {
                        X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
                        if (!cert)
                                break;
                        certs[n++] = cert;
                }
                ERR_clear_error();
        }
        /* Only the ASK/ASVK (as Azure THIM serves it, and as Constellation uses an issuer's chain:
         * never trusting an ARK from the issuer): complete it with the built-in ARK named by its CN. */
        if (n == 1 && !root_sha256) {
                char cn[64];
                subject_cn(certs[0], cn, sizeof(cn));
                const char *p = strncmp(cn, "SEV-VLEK-", 9) == 0 ? cn + 9 : strncmp(cn, "SEV-", 4) == 0 ? cn + 4 : NULL;
                enum snp_product product = p && strchr(p, '-') == NULL ? snp_product_from_name(p) : SNP_PRODUCT_UNKNOWN;
                if (product != SNP_PRODUCT_UNKNOWN) {
                        certs[1] = snp_builtin_ark(product);
                        if (!certs[1]) {
                                r = snp_fail(v, SNP_REASON_INTERNAL, "cannot load the built-in ARK-%s",
                                             snp_product_to_string(product));
                                goto out;
                        }
                        n = 2;
                }
        }

        if (n != CHAIN_MAX_CERTS) {
                r = snp_fail(v, SNP_REASON_CHAIN_MALFORMED,
                             "chain holds %s%zu PEM certificates, expected the ASK or ASVK (and the ARK)",
                             n > CHAIN_MAX_CERTS ? "more than " : "", n > CHAIN_MAX_CERTS ? (size_t) CHAIN_MAX_CERTS : n);
                goto out;
        }

        /* Find the pinned root. */
        size_t ark_idx = SIZE_MAX;
        enum snp_product product = SNP_PRODUCT_UNKNOWN;
        uint8_t md[CHAIN_MAX_CERTS][32];
        for (size_t i = 0; i < n; i++) {
                unsigned md_len = 0;
                if (X509_digest(certs[i], EVP_sha256(), md[i], &md_len) != 1 || md_len != 32) {
                        r = snp_fail(v, SNP_REASON_INTERNAL, "cannot hash certificate");
                        goto out;
                }
                enum snp_product p = !root_sha256        ? snp_ark_pinned(md[i])
                                     : ct_memeq(md[i], 32, root_sha256, 32) ? root_product
                                                                         : SNP_PRODUCT_UNKNOWN;
                if (p != SNP_PRODUCT_UNKNOWN && ark_idx == SIZE_MAX) {
                        ark_idx = i;
                        product = p;
                }
        }
        if (ark_idx == SIZE_MAX) {
                char hex[2][65];
                fingerprint_hex(md[0], hex[0]);
                fingerprint_hex(md[1], hex[1]);
                r = snp_fail(v, SNP_REASON_ARK_NOT_PINNED,
                             "no certificate is a pinned AMD root (Milan, Genoa, Turin ARK); SHA-256 %s, %s", hex[0],
                             hex[1]);
                goto out;
        }
        X509 *ark = certs[ark_idx], *ask = certs[1 - ark_idx];

        c = calloc(1, sizeof(snp_chain));
        if (!c) {
                r = snp_fail(v, SNP_REASON_INTERNAL, "out of memory");
                goto out;
        }
        c->product = product;

        /* The intermediate's name says what it signs: "SEV-<Product>" (ASK, VCEKs) or
         * "SEV-VLEK-<Product>" (ASVK, VLEKs) (KDS spec, cert_chain). */
        subject_cn(ask, c->ask_cn, sizeof(c->ask_cn));
        char expect_ask[32], expect_asvk[32];
        (void) snprintf(expect_ask, sizeof(expect_ask), "SEV-%s", snp_product_to_string(product));
        (void) snprintf(expect_asvk, sizeof(expect_asvk), "SEV-VLEK-%s", snp_product_to_string(product));
        if (streq(c->ask_cn, expect_ask))
                c->kind = SNP_SIGNER_VCEK;
        else if (streq(c->ask_cn, expect_asvk))
                c->kind = SNP_SIGNER_VLEK;
        else {
                r = snp_fail(v, SNP_REASON_CHAIN_MALFORMED, "intermediate CN '%s' is neither '%s' nor '%s'", c->ask_cn,
                             expect_ask, expect_asvk);
                goto out;
        }

        EVP_PKEY *ark_key = X509_get0_pubkey(ark);
        if (!ark_key || X509_verify(ark, ark_key) != 1) {
                ERR_clear_error();
                r = snp_fail(v, SNP_REASON_CHAIN_SIGNATURE, "ARK-%s: self-signature invalid",
                             snp_product_to_string(product));
                goto out;
        }
        if (X509_NAME_cmp(X509_get_issuer_name(ask), X509_get_subject_name(ark)) != 0 || X509_verify(ask, ark_key) != 1) {
                ERR_clear_error();
                r = snp_fail(v, SNP_REASON_CHAIN_SIGNATURE, "%s: not signed by ARK-%s", c->ask_cn,
                             snp_product_to_string(product));
                goto out;
        }
        if (validity_from_x509(ark, "ARK", &c->validity[0]) < 0 ||
            validity_from_x509(ask, c->kind == SNP_SIGNER_VLEK ? "ASVK" : "ASK", &c->validity[1]) < 0) {
                r = snp_fail(v, SNP_REASON_CHAIN_MALFORMED, "unparseable validity period");
                goto out;
        }
        r = check_validity(c->validity, 2, options_time(opts), v);
        if (r < 0)
                goto out;

        c->ark = ark;
        c->ask = ask;
        certs[0] = certs[1] = NULL;
        *ret = TAKE_PTR(c);
        snp_verdict_set(v, SNP_REASON_OK, NULL);
        r = 0;
out:
        for (size_t i = 0; i < ELEMENTSOF(certs); i++)
                X509_free(certs[i]);
        return r;
}

int snp_chain_new(const uint8_t *pem, size_t len, const struct snp_options *opts, snp_chain **ret,
                  struct snp_verdict *v) {
        return chain_new(pem, len, opts, SNP_PRODUCT_UNKNOWN, NULL, ret, v);
}

int snp_chain_new_with_root(const uint8_t *pem, size_t len, const struct snp_options *opts, enum snp_product product,
                            const uint8_t root_sha256[32], snp_chain **ret, struct snp_verdict *v) {
        if (!root_sha256 || product <= SNP_PRODUCT_UNKNOWN || product >= _SNP_PRODUCT_MAX)
                return snp_fail(v, SNP_REASON_INVALID_ARGUMENT, "no root fingerprint or product");
        return chain_new(pem, len, opts, product, root_sha256, ret, v);
}

/* Signer */

snp_signer *snp_signer_free(snp_signer *s) {
        if (!s)
                return NULL;
        EVP_PKEY_CTX_free(s->ctx);
        EVP_PKEY_free(s->key);
        EVP_MD_free(s->sha384);
        free(s);
        return NULL;
}

const struct snp_cert_info *snp_signer_info(const snp_signer *s) {
        return &s->info;
}

int snp_signer_new(const snp_chain *chain, const uint8_t *cert_data, size_t len, const struct snp_options *opts,
                   snp_signer **ret, struct snp_verdict *v) {
        if (!chain || !cert_data || !ret)
                return snp_fail(v, SNP_REASON_INVALID_ARGUMENT, "no chain or certificate");
        const char *kind = snp_signer_kind_to_string(chain->kind);

        _cleanup_(X509_freep) X509 *cert = NULL;
        int r = snp_x509_load(cert_data, len, &cert);
        if (r == -ENOMEM)
                return snp_fail(v, SNP_REASON_INTERNAL, "out of memory");
        if (r < 0)
                return snp_fail(v, SNP_REASON_CERT_MALFORMED, "%s: not one DER or PEM certificate of at most %u bytes",
                                kind, SNP_CERT_MAX_SIZE);

        if (X509_NAME_cmp(X509_get_issuer_name(cert), X509_get_subject_name(chain->ask)) != 0) {
                char issuer[64] = "";
                int n = X509_NAME_get_text_by_NID(X509_get_issuer_name(cert), NID_commonName, issuer, sizeof(issuer));
                if (n < 0)
                        issuer[0] = 0;
                ERR_clear_error();
                return snp_fail(v, SNP_REASON_CHAIN_SIGNATURE, "%s: issued by '%s', not by the chain's '%s'", kind, issuer,
                                chain->ask_cn);
        }
        if (X509_verify(cert, X509_get0_pubkey(chain->ask)) != 1) {
                ERR_clear_error();
                return snp_fail(v, SNP_REASON_CHAIN_SIGNATURE, "%s: signature by %s invalid", kind, chain->ask_cn);
        }

        _cleanup_(snp_signer_freep) snp_signer *s = calloc(1, sizeof(snp_signer));
        if (!s)
                return snp_fail(v, SNP_REASON_INTERNAL, "out of memory");
        s->product = chain->product;
        s->kind = chain->kind;
        memcpy(s->validity, chain->validity, sizeof(chain->validity));
        if (validity_from_x509(cert, kind, &s->validity[2]) < 0)
                return snp_fail(v, SNP_REASON_CERT_MALFORMED, "%s: unparseable validity period", kind);
        r = check_validity(s->validity, ELEMENTSOF(s->validity), options_time(opts), v);
        if (r < 0)
                return r;

        r = snp_cert_info_from_x509(cert, &s->info, v);
        if (r < 0)
                return r;
        if (s->info.product != chain->product)
                return snp_fail(v, SNP_REASON_PRODUCT_MISMATCH, "%s: productName '%s' but the chain is for %s", kind,
                                s->info.product_name, snp_product_to_string(chain->product));
        /* A VCEK identifies its chip; a VLEK identifies the cloud provider instead. */
        if (chain->kind == SNP_SIGNER_VCEK && s->info.hwid_len == 0)
                return snp_fail(v, SNP_REASON_CERT_MALFORMED, "VCEK: hwID extension (1.3.6.1.4.1.3704.1.4) missing");

        EVP_PKEY *pub = X509_get0_pubkey(cert);
        char group[32] = "";
        size_t group_len = 0;
        if (!pub || EVP_PKEY_get_base_id(pub) != EVP_PKEY_EC ||
            EVP_PKEY_get_group_name(pub, group, sizeof(group), &group_len) != 1 || !streq(group, "secp384r1")) {
                ERR_clear_error();
                return snp_fail(v, SNP_REASON_CERT_MALFORMED, "%s: public key is not ECDSA P-384", kind);
        }
        if (!EVP_PKEY_up_ref(pub))
                return snp_fail(v, SNP_REASON_INTERNAL, "out of memory");
        s->key = pub;

        s->ctx = EVP_PKEY_CTX_new(s->key, NULL);
        s->sha384 = EVP_MD_fetch(NULL, "SHA384", NULL);
        if (!s->ctx || !s->sha384 || EVP_PKEY_verify_init(s->ctx) != 1) {
                ERR_clear_error();
                return snp_fail(v, SNP_REASON_INTERNAL, "cannot set up ECDSA verification");
        }
        *ret = TAKE_PTR(s);
        snp_verdict_set(v, SNP_REASON_OK, NULL);
        return 0;
}

/* DER INTEGER of a 72-byte little-endian unsigned value (minimal, with a 0x00 pad if the top
 * bit is set). out must hold 2 + 1 + 72 bytes. Returns the encoded length. */
static size_t der_uint_le(const uint8_t *le, size_t len, uint8_t *out) {
        size_t top = len;
        while (top > 0 && le[top - 1] == 0)
                top--;
        size_t o = 2;
        if (top == 0)
                out[o++] = 0;
        else {
                if (le[top - 1] & 0x80)
                        out[o++] = 0;
                for (size_t i = top; i > 0; i--)
                        out[o++] = le[i - 1];
        }
        out[0] = 0x02;
        out[1] = (uint8_t) (o - 2);
        return o;
}

/* ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER } (RFC 3279 §2.2.3). */
static size_t der_ecdsa_sig(const struct snp_report *r, uint8_t out[160]) {
        uint8_t body[2 * 75];
        size_t n = der_uint_le(r->signature_r, sizeof(r->signature_r), body);
        n += der_uint_le(r->signature_s, sizeof(r->signature_s), body + n);
        size_t o = 0;
        out[o++] = 0x30;
        if (n >= 0x80)
                out[o++] = 0x81;
        out[o++] = (uint8_t) n;
        memcpy(out + o, body, n);
        return o + n;
}

static int check_tcb_equal(const struct snp_tcb *cert, const struct snp_tcb *rep, const char *kind,
                           struct snp_verdict *v) {
        static const struct {
                const char *name;
                size_t off;
        } fields[] = {
                { "fmc", offsetof(struct snp_tcb, fmc) },
                { "bootloader", offsetof(struct snp_tcb, bootloader) },
                { "tee", offsetof(struct snp_tcb, tee) },
                { "snp", offsetof(struct snp_tcb, snp) },
                { "microcode", offsetof(struct snp_tcb, microcode) },
        };
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                if (i == 0 && !cert->has_fmc)
                        continue;
                uint8_t a = ((const uint8_t *) cert)[fields[i].off], b = ((const uint8_t *) rep)[fields[i].off];
                if (a != b)
                        return snp_fail(v, SNP_REASON_TCB_MISMATCH, "reported_tcb.%s: %s certificate says %u, report says %u",
                                        fields[i].name, kind, a, b);
        }
        return 0;
}

static int check_tcb_minimum(const struct snp_tcb *min, const struct snp_tcb *t, const char *which,
                             struct snp_verdict *v) {
        static const struct {
                const char *name;
                size_t off;
        } fields[] = {
                { "fmc", offsetof(struct snp_tcb, fmc) },
                { "bootloader", offsetof(struct snp_tcb, bootloader) },
                { "tee", offsetof(struct snp_tcb, tee) },
                { "snp", offsetof(struct snp_tcb, snp) },
                { "microcode", offsetof(struct snp_tcb, microcode) },
        };
        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                if (i == 0 && !t->has_fmc)
                        continue;
                uint8_t want = ((const uint8_t *) min)[fields[i].off], got = ((const uint8_t *) t)[fields[i].off];
                if (got < want)
                        return snp_fail(v, SNP_REASON_TCB_TOO_LOW, "%s.%s: %u is below the minimum %u", which, fields[i].name,
                                        got, want);
        }
        return 0;
}

static void hex_short(const uint8_t *d, size_t n, char *out, size_t size) {
        size_t o = 0;
        for (size_t i = 0; i < n && o + 3 <= size; i++, o += 2)
                (void) snprintf(out + o, 3, "%02x", d[i]);
        out[o < size ? o : size - 1] = 0;
}

static int check_expected(const uint8_t *got, const uint8_t *want, size_t n, const char *name, enum snp_reason reason,
                          struct snp_verdict *v) {
        if (!want || ct_memeq(got, n, want, n))
                return 0;
        char g[2 * 64 + 1], w[2 * 64 + 1];
        hex_short(got, n, g, sizeof(g));
        hex_short(want, n, w, sizeof(w));
        return snp_fail(v, reason, "%s: expected %s, got %s", name, w, g);
}

int snp_signer_verify_report(snp_signer *s, const uint8_t *data, size_t len, const struct snp_options *opts,
                             struct snp_report *ret_report, struct snp_verdict *v) {
        static const struct snp_options defaults = {};
        if (!s)
                return snp_fail(v, SNP_REASON_INVALID_ARGUMENT, "no signer");
        if (!opts)
                opts = &defaults;

        struct snp_report r;
        int ret = snp_report_parse(data, len, &r, v);
        if (ret < 0)
                return ret;

        const char *kind = snp_signer_kind_to_string(s->kind);
        if (r.signer != s->kind)
                return snp_fail(v, SNP_REASON_SIGNER_KIND, "flags.signing_key: report is signed by a %s, the certificate is a %s",
                                snp_signer_kind_to_string(r.signer), kind);
        if (r.product != SNP_PRODUCT_UNKNOWN && r.product != s->product)
                return snp_fail(v, SNP_REASON_PRODUCT_MISMATCH, "cpuid: report is from %s (family 0x%02x model 0x%02x), the chain is for %s",
                                snp_product_to_string(r.product), r.cpuid_fam_id, r.cpuid_mod_id,
                                snp_product_to_string(s->product));
        /* v2 reports carry no CPUID: the verified certificate names the product and so the TCB layout. */
        snp_report_set_product(&r, s->product);

        ret = check_validity(s->validity, ELEMENTSOF(s->validity), options_time(opts), v);
        if (ret < 0)
                return ret;

        uint8_t md[48];
        unsigned md_len = 0;
        if (EVP_Digest(data, SNP_SIGNED_SIZE, md, &md_len, s->sha384, NULL) != 1 || md_len != sizeof(md)) {
                ERR_clear_error();
                return snp_fail(v, SNP_REASON_INTERNAL, "SHA-384 failed");
        }
        uint8_t sig[160];
        size_t sig_len = der_ecdsa_sig(&r, sig);
        if (EVP_PKEY_verify(s->ctx, sig, sig_len, md, sizeof(md)) != 1) {
                ERR_clear_error();
                return snp_fail(v, SNP_REASON_REPORT_SIGNATURE, "signature: not a valid ECDSA P-384 signature by the %s over bytes 0x000-0x29f",
                                kind);
        }

        ret = check_tcb_equal(&s->info.tcb, &r.reported_tcb, kind, v);
        if (ret < 0)
                return ret;
        if (s->kind == SNP_SIGNER_VCEK && !r.mask_chip_id && s->info.hwid_len > 0 &&
            memcmp(s->info.hwid, r.chip_id, s->info.hwid_len) != 0) {
                char g[2 * 64 + 1], w[2 * 64 + 1];
                hex_short(r.chip_id, s->info.hwid_len, g, sizeof(g));
                hex_short(s->info.hwid, s->info.hwid_len, w, sizeof(w));
                return snp_fail(v, SNP_REASON_CHIP_ID_MISMATCH, "chip_id: VCEK hwID is %s, report says %s", w, g);
        }

        /* Guest policy (ABI spec GUEST_POLICY): a debuggable guest's memory is readable by the host. */
        if ((r.policy & SNP_POLICY_DEBUG) && !opts->allow_debug)
                return snp_fail(v, SNP_REASON_POLICY_DEBUG, "policy: DEBUG (bit 19) is set (0x%" PRIx64 ")", r.policy);
        if ((r.policy & SNP_POLICY_MIGRATE_MA) && !opts->allow_migrate_ma)
                return snp_fail(v, SNP_REASON_POLICY, "policy: MIGRATE_MA (bit 18) is set (0x%" PRIx64 ")", r.policy);
        uint8_t vmpls = opts->allowed_vmpls ? opts->allowed_vmpls : 1u;
        if (!(vmpls & (1u << r.vmpl)))
                return snp_fail(v, SNP_REASON_VMPL, "vmpl: %" PRIu32 " is not allowed (allowed mask 0x%x)", r.vmpl, vmpls);

        if (opts->min_tcb_set) {
                const struct {
                        const char *name;
                        const struct snp_tcb *tcb;
                } tcbs[] = {
                        { "reported_tcb", &r.reported_tcb },
                        { "current_tcb", &r.current_tcb },
                        { "committed_tcb", &r.committed_tcb },
                        { "launch_tcb", &r.launch_tcb },
                };
                for (size_t i = 0; i < ELEMENTSOF(tcbs); i++) {
                        ret = check_tcb_minimum(&opts->min_tcb, tcbs[i].tcb, tcbs[i].name, v);
                        if (ret < 0)
                                return ret;
                }
        }

        ret = check_expected(r.report_data, opts->expected_report_data, sizeof(r.report_data), "report_data",
                             SNP_REASON_REPORT_DATA, v);
        if (ret < 0)
                return ret;
        ret = check_expected(r.measurement, opts->expected_measurement, sizeof(r.measurement), "measurement",
                             SNP_REASON_MEASUREMENT, v);
        if (ret < 0)
                return ret;
        ret = check_expected(r.host_data, opts->expected_host_data, sizeof(r.host_data), "host_data",
                             SNP_REASON_HOST_DATA, v);
        if (ret < 0)
                return ret;

        if (opts->n_accepted_id_key_digests > 0) {
                bool found = false;
                for (size_t i = 0; i < opts->n_accepted_id_key_digests; i++)
                        found |= ct_memeq(r.id_key_digest, sizeof(r.id_key_digest), opts->accepted_id_key_digests[i], 48);
                if (!found) {
                        char g[2 * 48 + 1];
                        hex_short(r.id_key_digest, sizeof(r.id_key_digest), g, sizeof(g));
                        return snp_fail(v, SNP_REASON_ID_KEY_DIGEST, "id_key_digest: %s is not one of the %zu accepted digests", g,
                                        opts->n_accepted_id_key_digests);
                }
        }

        if (ret_report)
                *ret_report = r;
        snp_verdict_set(v, SNP_REASON_OK, NULL);
        return 0;
}
