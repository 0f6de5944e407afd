/* SPDX-License-Identifier: Apache-2.0 */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <limits.h>
#include <openssl/pem.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

#include "basic/cleanup-openssl.h"
#include "basic/encoding.h"
#include "basic/secret.h"
#include "tpm/quote.h"

const char *tpmq_reason_to_string(tpmq_reason r) {
        static const char *const s[] = {
                [TPMQ_OK] = "quote verified",
                [TPMQ_MALFORMED_ATTEST] = "TPMS_ATTEST is truncated or malformed",
                [TPMQ_NOT_GENERATED] = "TPMS_ATTEST magic is not TPM_GENERATED_VALUE",
                [TPMQ_NOT_A_QUOTE] = "attestation is not a quote (type is not TPM_ST_ATTEST_QUOTE)",
                [TPMQ_MALFORMED_SIGNATURE] = "TPMT_SIGNATURE is truncated, malformed or of an unsupported scheme",
                [TPMQ_BAD_KEY] = "attestation key cannot verify this signature scheme",
                [TPMQ_SIGNATURE_INVALID] = "quote signature does not verify with the attestation key",
                [TPMQ_NONCE_MISMATCH] = "qualifying data (extraData) does not equal the expected nonce",
                [TPMQ_BANK_MISMATCH] = "quote covers a different PCR bank than the PCR values compared",
                [TPMQ_PCR_MISSING] = "quote selects a PCR whose value was not provided",
                [TPMQ_PCR_DIGEST_MISMATCH] = "PCR values do not match the quoted PCR digest",
                [TPMQ_PCR_NOT_QUOTED] = "PCR value given for a PCR the quote does not select "
                                        "(given PCRs and quote do not have the same PCR selection)",
                [TPMQ_PCR_SELECTION_EMPTY] = "quote selects no PCRs",
        };
        return (unsigned) r < ELEMENTSOF(s) && s[r] ? s[r] : "unknown reason";
}

const char *tpmq_alg_name(uint16_t alg) {
        switch (alg) {
        case TPM_ALG_SHA1: return "sha1";
        case TPM_ALG_SHA256: return "sha256";
        case TPM_ALG_SHA384: return "sha384";
        case TPM_ALG_SHA512: return "sha512";
        default: return "unknown";
        }
}

size_t tpmq_digest_size(uint16_t alg) {
        switch (alg) {
        case TPM_ALG_SHA1: return 20;
        case TPM_ALG_SHA256: return 32;
        case TPM_ALG_SHA384: return 48;
        case TPM_ALG_SHA512: return 64;
        default: return 0;
        }
}

static const EVP_MD *md_for(uint16_t alg) {
        switch (alg) {
        case TPM_ALG_SHA1: return EVP_sha1();
        case TPM_ALG_SHA256: return EVP_sha256();
        case TPM_ALG_SHA384: return EVP_sha384();
        case TPM_ALG_SHA512: return EVP_sha512();
        default: return NULL;
        }
}

/* Big-endian reader that never reads past the end and only advances on success
 * (tpm2-tss src/tss2-mu/base-types.c style). */
struct rd {
        const uint8_t *p;
        size_t len, off;
};

static bool rd_bytes(struct rd *r, size_t n, const uint8_t **ret) {
        if (!bounds_ok(r->len, r->off, n))
                return false;
        *ret = r->p + r->off;
        r->off += n;
        return true;
}

static bool rd_u8(struct rd *r, uint8_t *v) {
        const uint8_t *b;
        if (!rd_bytes(r, 1, &b))
                return false;
        *v = b[0];
        return true;
}

static bool rd_u16(struct rd *r, uint16_t *v) {
        const uint8_t *b;
        if (!rd_bytes(r, 2, &b))
                return false;
        *v = (uint16_t) (b[0] << 8 | b[1]);
        return true;
}

static bool rd_u32(struct rd *r, uint32_t *v) {
        const uint8_t *b;
        if (!rd_bytes(r, 4, &b))
                return false;
        *v = (uint32_t) b[0] << 24 | (uint32_t) b[1] << 16 | (uint32_t) b[2] << 8 | b[3];
        return true;
}

static bool rd_u64(struct rd *r, uint64_t *v) {
        uint32_t hi, lo;
        size_t save = r->off;
        if (!rd_u32(r, &hi) || !rd_u32(r, &lo)) {
                r->off = save;
                return false;
        }
        *v = (uint64_t) hi << 32 | lo;
        return true;
}

/* TPM2B_*: u16 size then bytes, at most max. */
static bool rd_tpm2b(struct rd *r, size_t max, const uint8_t **ret, size_t *ret_len) {
        uint16_t n;
        size_t save = r->off;
        if (!rd_u16(r, &n) || n > max || !rd_bytes(r, n, ret)) {
                r->off = save;
                return false;
        }
        *ret_len = n;
        return true;
}

int tpmq_attest_parse(const uint8_t *buf, size_t len, tpmq_attest *ret) {
        struct rd r = { buf, len, 0 };
        tpmq_attest a = { 0 };
        const uint8_t *p;
        size_t n;
        uint8_t safe;
        uint32_t count;
        if (!rd_u32(&r, &a.magic) || !rd_u16(&r, &a.type) || !rd_tpm2b(&r, TPMQ_MAX_TPM2B_DATA, &p, &n) /* qualifiedSigner: TPM2B_NAME */ ||
            !rd_tpm2b(&r, sizeof(a.extra_data), &p, &n))
                return -EBADMSG;
        memcpy(a.extra_data, p, n);
        a.extra_data_len = n;
        if (!rd_u64(&r, &a.clock) || !rd_u32(&r, &a.reset_count) || !rd_u32(&r, &a.restart_count) ||
            !rd_u8(&r, &safe) || !rd_u64(&r, &a.firmware_version))
                return -EBADMSG;
        if (a.type != TPM_ST_ATTEST_QUOTE) {
                *ret = a; /* the caller reports "not a quote" */
                return 0;
        }
        /* TPMS_QUOTE_INFO: TPML_PCR_SELECTION then TPM2B_DIGEST. */
        if (!rd_u32(&r, &count) || count > ELEMENTSOF(a.selections))
                return -EBADMSG;
        for (uint32_t i = 0; i < count; i++) {
                uint16_t hash;
                uint8_t size;
                if (!rd_u16(&r, &hash) || !rd_u8(&r, &size) || size > 4 || !rd_bytes(&r, size, &p))
                        return -EBADMSG;
                uint32_t mask = 0;
                for (uint8_t k = 0; k < size; k++)
                        mask |= (uint32_t) p[k] << (8 * k);
                a.selections[a.n_selections++] = (tpmq_pcr_selection){ hash, mask };
        }
        if (!rd_tpm2b(&r, TPMQ_MAX_DIGEST, &p, &n))
                return -EBADMSG;
        memcpy(a.pcr_digest, p, n);
        a.pcr_digest_len = n;
        if (r.off != len)
                return -EBADMSG; /* trailing bytes: not one TPMS_ATTEST */
        *ret = a;
        return 0;
}

int tpmq_signature_parse(const uint8_t *buf, size_t len, tpmq_signature *ret) {
        struct rd r = { buf, len, 0 };
        tpmq_signature s = { 0 };
        const uint8_t *p, *q;
        size_t n, m;
        if (!rd_u16(&r, &s.sig_alg) || !rd_u16(&r, &s.hash_alg))
                return -EBADMSG;
        switch (s.sig_alg) {
        case TPM_ALG_RSASSA:
        case TPM_ALG_RSAPSS:
                if (!rd_tpm2b(&r, sizeof(s.sig), &p, &n))
                        return -EBADMSG;
                memcpy(s.sig, p, n);
                s.sig_len = n;
                break;
        case TPM_ALG_ECDSA: {
                if (!rd_tpm2b(&r, 66, &p, &n) || !rd_tpm2b(&r, 66, &q, &m))
                        return -EBADMSG;
                _cleanup_(ECDSA_SIG_freep) ECDSA_SIG *es = ECDSA_SIG_new();
                BIGNUM *br = BN_bin2bn(p, (int) n, NULL), *bs = BN_bin2bn(q, (int) m, NULL);
                if (!es || !br || !bs || ECDSA_SIG_set0(es, br, bs) != 1) {
                        BN_free(br);
                        BN_free(bs);
                        return -ENOMEM;
                }
                unsigned char *der = NULL;
                int dl = i2d_ECDSA_SIG(es, &der);
                if (dl <= 0 || (size_t) dl > sizeof(s.sig)) {
                        OPENSSL_free(der);
                        return -EBADMSG;
                }
                memcpy(s.sig, der, (size_t) dl);
                s.sig_len = (size_t) dl;
                OPENSSL_free(der);
                break;
        }
        default:
                return -EOPNOTSUPP;
        }
        if (r.off != len || !md_for(s.hash_alg))
                return -EBADMSG;
        *ret = s;
        return 0;
}

#define TPM_ALG_RSAES 0x0015
#define TPM_ALG_OAEP 0x0017
#define TPM_ALG_ECDAA 0x001A

/* TPMT_SYM_DEF_OBJECT (Part 2 §11.1.7) then TPMT_RSA_SCHEME / TPMT_ECC_SCHEME (§11.2.4.2, §11.2.5.6):
 * the scheme's details are a hash (TPMS_SCHEME_HASH) for every scheme we know but RSAES (empty)
 * and ECDAA (hash + count). */
static bool rd_sym_and_scheme(struct rd *r, uint16_t *ret_scheme, uint16_t *ret_hash) {
        uint16_t alg, x, scheme, hash = TPM_ALG_NULL;
        size_t save = r->off;
        if (!rd_u16(r, &alg))
                goto fail;
        if (alg != TPM_ALG_NULL && (!rd_u16(r, &x) || !rd_u16(r, &x)))
                goto fail;
        if (!rd_u16(r, &scheme))
                goto fail;
        switch (scheme) {
        case TPM_ALG_NULL:
        case TPM_ALG_RSAES:
                break;
        case TPM_ALG_ECDAA:
                if (!rd_u16(r, &hash) || !rd_u16(r, &x))
                        goto fail;
                break;
        case TPM_ALG_RSASSA:
        case TPM_ALG_RSAPSS:
        case TPM_ALG_OAEP:
        case TPM_ALG_ECDSA:
        default: /* ECSCHNORR, SM2, ECDH, ECMQV: all TPMS_SCHEME_HASH */
                if (!rd_u16(r, &hash))
                        goto fail;
                break;
        }
        *ret_scheme = scheme;
        *ret_hash = hash;
        return true;
fail:
        r->off = save;
        return false;
}

bool tpmq_public_is_restricted_signer(const tpmq_public_info *info) {
        uint32_t a = info->attributes;
        return (a & TPMQ_ATTR_RESTRICTED) && (a & TPMQ_ATTR_SIGN_ENCRYPT) && !(a & TPMQ_ATTR_DECRYPT);
}

int tpmq_public_parse(const uint8_t *buf, size_t len, EVP_PKEY **ret) {
        return tpmq_public_parse_info(buf, len, ret, NULL);
}

int tpmq_public_parse_info(const uint8_t *buf, size_t len, EVP_PKEY **ret, tpmq_public_info *ret_info) {
        struct rd r = { buf, len, 0 };
        tpmq_public_info info = { 0 };
        const uint8_t *p, *q;
        size_t n, m;
        if (!rd_u16(&r, &info.type) || !rd_u16(&r, &info.name_alg) || !rd_u32(&r, &info.attributes) ||
            !rd_tpm2b(&r, TPMQ_MAX_DIGEST, &p, &n) /* authPolicy */ ||
            !rd_sym_and_scheme(&r, &info.scheme, &info.scheme_hash))
                return -EBADMSG;
        _cleanup_(EVP_PKEY_CTX_freep) EVP_PKEY_CTX *ctx = NULL;
        OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
        if (!bld)
                return -ENOMEM;
        int rc = -EBADMSG;
        BIGNUM *bn_n = NULL, *bn_e = NULL;
        OSSL_PARAM *params = NULL;
        /* OSSL_PARAM_BLD keeps a pointer to octet strings until OSSL_PARAM_BLD_to_param(): the
         * point must live as long as the builder (ASan found it in a block scope). */
        uint8_t point[1 + 2 * 66];
        if (info.type == TPM_ALG_RSA) {
                uint32_t exp;
                if (!rd_u16(&r, &info.bits) || !rd_u32(&r, &exp) || !rd_tpm2b(&r, 512, &p, &n) || r.off != len ||
                    n * 8 != info.bits || info.bits < 2048)
                        goto out;
                /* Part 2 §12.2.3.5: an exponent of zero means 2^16 + 1. */
                bn_n = BN_bin2bn(p, (int) n, NULL);
                bn_e = BN_new();
                if (!bn_n || !bn_e || !BN_set_word(bn_e, exp ? exp : 65537) ||
                    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
                    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e))
                        goto out;
                ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
        } else if (info.type == TPM_ALG_ECC) {
                uint16_t curve, kdf, x;
                /* TPMS_ECC_PARMS (§12.2.3.6): curveID, kdf (TPMT_KDF_SCHEME), then unique TPMS_ECC_POINT. */
                if (!rd_u16(&r, &curve) || !rd_u16(&r, &kdf) || (kdf != TPM_ALG_NULL && !rd_u16(&r, &x)) ||
                    !rd_tpm2b(&r, 66, &p, &n) || !rd_tpm2b(&r, 66, &q, &m) || r.off != len)
                        goto out;
                const char *group = curve == TPM_ECC_NIST_P256 ? "P-256" :
                                    curve == TPM_ECC_NIST_P384 ? "P-384" :
                                    curve == TPM_ECC_NIST_P521 ? "P-521" : NULL;
                size_t coord = curve == TPM_ECC_NIST_P256 ? 32 : curve == TPM_ECC_NIST_P384 ? 48 : 66;
                if (!group) {
                        rc = -EOPNOTSUPP;
                        goto out;
                }
                if (n != coord || m != coord)
                        goto out;
                info.bits = curve == TPM_ECC_NIST_P521 ? 521 : (uint16_t) (coord * 8);
                point[0] = 0x04; /* uncompressed (SEC 1 §2.3.3) */
                memcpy(point + 1, p, n);
                memcpy(point + 1 + n, q, m);
                if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
                    !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1 + n + m))
                        goto out;
                ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
        } else {
                rc = -EOPNOTSUPP;
                goto out;
        }
        params = OSSL_PARAM_BLD_to_param(bld);
        EVP_PKEY *key = NULL;
        if (!ctx || !params || EVP_PKEY_fromdata_init(ctx) != 1 ||
            EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
                goto out;
        /* The Name (Part 1 §16): nameAlg || H_nameAlg(marshalled TPMT_PUBLIC). */
        const EVP_MD *name_md = md_for(info.name_alg);
        unsigned int dl = 0;
        if (name_md) {
                info.name[0] = (uint8_t) (info.name_alg >> 8);
                info.name[1] = (uint8_t) info.name_alg;
                if (EVP_Digest(buf, len, info.name + 2, &dl, name_md, NULL) != 1) {
                        EVP_PKEY_free(key);
                        rc = -ENOMEM;
                        goto out;
                }
                info.name_len = 2 + dl;
        }
        *ret = key;
        if (ret_info)
                *ret_info = info;
        rc = 0;
out:
        OSSL_PARAM_free(params);
        OSSL_PARAM_BLD_free(bld);
        BN_free(bn_n);
        BN_free(bn_e);
        return rc;
}

int tpmq_load_ak(const uint8_t *buf, size_t len, EVP_PKEY **ret, tpmq_public_info *ret_info, bool *ret_has_info) {
        static const char pem_tag[] = "-----BEGIN PUBLIC KEY-----";
        EVP_PKEY *key = NULL;
        tpmq_public_info info;
        int r;

        if (len > INT_MAX)
                return -EFBIG;
        if (memmem(buf, len, pem_tag, strlen(pem_tag))) {
                _cleanup_(BIO_freep) BIO *bio = BIO_new_mem_buf(buf, (int) len);
                if (!bio)
                        return -ENOMEM;
                key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
                if (!key)
                        return -EBADMSG;
                if (!EVP_PKEY_is_a(key, "RSA") && !EVP_PKEY_is_a(key, "EC")) {
                        EVP_PKEY_free(key);
                        return -EOPNOTSUPP;
                }
                *ret = key;
                if (ret_has_info)
                        *ret_has_info = false;
                return 0;
        }
        /* TPM2B_PUBLIC (Part 2 §12.2.5), what tpm2_createak -u and tpm2_readpublic -o write: a u16
         * size, then exactly that many bytes of TPMT_PUBLIC. No TPMT_PUBLIC is mistaken for one: its
         * first u16 is the key type (0x0001 or 0x0023), never its own length minus 2 for a key of
         * 2048 bits or a NIST curve. */
        if (len >= 2 && (size_t) (buf[0] << 8 | buf[1]) == len - 2) {
                buf += 2;
                len -= 2;
        }
        r = tpmq_public_parse_info(buf, len, &key, &info);
        if (r < 0)
                return r;
        *ret = key;
        if (ret_info)
                *ret_info = info;
        if (ret_has_info)
                *ret_has_info = true;
        return 0;
}

uint16_t tpmq_alg_from_name(const char *name) {
        static const struct {
                const char *name;
                uint16_t alg;
        } t[] = { { "sha1", TPM_ALG_SHA1 }, { "sha256", TPM_ALG_SHA256 }, { "sha384", TPM_ALG_SHA384 }, { "sha512", TPM_ALG_SHA512 } };
        for (size_t i = 0; name && i < ELEMENTSOF(t); i++)
                if (strcasecmp(name, t[i].name) == 0)
                        return t[i].alg;
        return 0;
}

int tpmq_pcr_bank_parse_text(const char *text, size_t len, uint16_t alg, tpmq_pcr_bank *ret, unsigned *ret_line) {
        tpmq_pcr_bank bank = { .alg = alg };
        size_t dlen = tpmq_digest_size(alg), off = 0;
        unsigned line = 0;
        if (dlen == 0)
                return -EOPNOTSUPP;
        while (off < len) {
                const char *nl = memchr(text + off, '\n', len - off);
                size_t l = nl ? (size_t) (nl - (text + off)) : len - off;
                const char *s = text + off;
                off += l + (nl ? 1 : 0);
                line++;
                while (l > 0 && (s[l - 1] == '\r' || s[l - 1] == ' '))
                        l--;
                if (l == 0)
                        continue;
                /* "<index> <hex>" with index 0..23 */
                unsigned idx = 0;
                size_t i = 0;
                while (i < l && i < 3 && s[i] >= '0' && s[i] <= '9')
                        idx = idx * 10 + (unsigned) (s[i++] - '0');
                if (i == 0 || i >= l || s[i] != ' ' || idx >= TPMQ_NUM_PCRS || bank.present[idx] ||
                    l - i - 1 != 2 * dlen)
                        goto bad;
                char hex[2 * TPMQ_MAX_DIGEST + 1];
                memcpy(hex, s + i + 1, 2 * dlen);
                hex[2 * dlen] = 0;
                if (hex_decode_exact(hex, bank.value[idx], dlen) < 0)
                        goto bad;
                bank.present[idx] = true;
        }
        *ret = bank;
        return 0;
bad:
        if (ret_line)
                *ret_line = line;
        return -EBADMSG;
}

static int verify_signature(const tpmq_signature *s, const uint8_t *msg, size_t len, EVP_PKEY *ak) {
        const EVP_MD *md = md_for(s->hash_alg);
        bool rsa = EVP_PKEY_is_a(ak, "RSA"), ec = EVP_PKEY_is_a(ak, "EC");
        if (!md || (s->sig_alg == TPM_ALG_ECDSA ? !ec : !rsa))
                return -EKEYREJECTED;
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_PKEY_CTX *pctx = NULL;
        if (!ctx || EVP_DigestVerifyInit(ctx, &pctx, md, NULL, ak) != 1)
                return -ENOMEM;
        if (s->sig_alg == TPM_ALG_RSAPSS &&
            (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
             /* Part 1 §B.7 / TPM uses salt length = digest length for RSAPSS; accept any. */
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_AUTO) != 1))
                return -ENOMEM;
        return EVP_DigestVerify(ctx, s->sig, s->sig_len, msg, len) == 1 ? 0 : -EBADMSG;
}

_printf_(2, 3) static void detail(char **ret, const char *fmt, ...) {
        if (!ret)
                return;
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(ret, fmt, ap) < 0)
                *ret = NULL;
        va_end(ap);
}

/* Bit i set for every PCR i whose value the caller gave. */
static uint32_t given_mask(const tpmq_pcr_bank *pcrs) {
        uint32_t m = 0;
        for (unsigned i = 0; i < TPMQ_NUM_PCRS; i++)
                if (pcrs->present[i])
                        m |= 1u << i;
        return m;
}

int tpmq_verify_quote(const uint8_t *attest, size_t attest_len, const uint8_t *sig, size_t sig_len, EVP_PKEY *ak,
                      const tpmq_pcr_bank *pcrs, const uint8_t *nonce, size_t nonce_len, tpmq_reason *ret_reason,
                      char **ret_detail) {
        tpmq_attest a;
        tpmq_signature s;
        tpmq_reason reason = TPMQ_OK;
        int r;

        if (ret_detail)
                *ret_detail = NULL;
        if (tpmq_attest_parse(attest, attest_len, &a) < 0)
                reason = TPMQ_MALFORMED_ATTEST;
        else if (a.magic != TPM_GENERATED_VALUE)
                reason = TPMQ_NOT_GENERATED;
        else if (a.type != TPM_ST_ATTEST_QUOTE)
                reason = TPMQ_NOT_A_QUOTE;
        else if (tpmq_signature_parse(sig, sig_len, &s) < 0)
                reason = TPMQ_MALFORMED_SIGNATURE;
        else if ((r = verify_signature(&s, attest, attest_len, ak)) < 0)
                reason = r == -EKEYREJECTED ? TPMQ_BAD_KEY : TPMQ_SIGNATURE_INVALID;
        else if (!ct_memeq(a.extra_data, a.extra_data_len, nonce, nonce_len)) {
                reason = TPMQ_NONCE_MISMATCH;
                detail(ret_detail, "%s: extraData has %zu bytes, expected nonce %zu bytes%s",
                       tpmq_reason_to_string(reason), a.extra_data_len, nonce_len,
                       a.extra_data_len == nonce_len ? " (contents differ)" : "");
        }
        else if (a.n_selections != 1 || a.selections[0].hash != pcrs->alg) {
                reason = TPMQ_BANK_MISMATCH;
                detail(ret_detail, "%s: quote selects %s%s, PCR values given are %s", tpmq_reason_to_string(reason),
                       a.n_selections ? tpmq_alg_name(a.selections[0].hash) : "no bank",
                       a.n_selections > 1 ? " and more banks" : "", tpmq_alg_name(pcrs->alg));
        } else if (a.selections[0].mask >> TPMQ_NUM_PCRS) {
                reason = TPMQ_PCR_MISSING;
                detail(ret_detail, "%s: quote selects PCRs above %u in the %s bank", tpmq_reason_to_string(reason),
                       TPMQ_NUM_PCRS - 1, tpmq_alg_name(pcrs->alg));
        } else if (tpmq_digest_size(pcrs->alg) == 0) {
                reason = TPMQ_BANK_MISMATCH;
                detail(ret_detail, "%s: unknown PCR bank 0x%04x", tpmq_reason_to_string(reason), pcrs->alg);
        } else if (a.selections[0].mask == 0) {
                reason = TPMQ_PCR_SELECTION_EMPTY;
                detail(ret_detail, "%s: the %s selection is empty, so it vouches for no PCR value",
                       tpmq_reason_to_string(reason), tpmq_alg_name(pcrs->alg));
        } else if ((given_mask(pcrs) & ~a.selections[0].mask) != 0) {
                /* Every value the caller goes on to trust must be covered by the digest: a genuine
                 * quote over PCR 0 must not carry made-up values for PCRs 4, 9, 11, 15. */
                uint32_t extra = given_mask(pcrs) & ~a.selections[0].mask;
                reason = TPMQ_PCR_NOT_QUOTED;
                detail(ret_detail, "%s: PCR %u (%s)%s; the quote selects %u PCRs, %u values were given",
                       tpmq_reason_to_string(reason), (unsigned) __builtin_ctz(extra), tpmq_alg_name(pcrs->alg),
                       extra & (extra - 1) ? " and others" : "", (unsigned) __builtin_popcount(a.selections[0].mask),
                       (unsigned) __builtin_popcount(given_mask(pcrs)));
        } else {
                /* pcrDigest = H_sig(PCR values of the selection, in index order) (Part 3 §18.4). */
                size_t dlen = tpmq_digest_size(pcrs->alg);
                _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
                if (!ctx || EVP_DigestInit_ex(ctx, md_for(s.hash_alg), NULL) != 1)
                        return -ENOMEM;
                for (unsigned i = 0; i < TPMQ_NUM_PCRS && reason == TPMQ_OK; i++) {
                        if (!(a.selections[0].mask & (1u << i)))
                                continue;
                        if (!pcrs->present[i]) {
                                reason = TPMQ_PCR_MISSING;
                                detail(ret_detail, "%s: PCR %u (%s)", tpmq_reason_to_string(reason), i,
                                       tpmq_alg_name(pcrs->alg));
                        } else
                                EVP_DigestUpdate(ctx, pcrs->value[i], dlen);
                }
                uint8_t digest[EVP_MAX_MD_SIZE];
                unsigned int dl = 0;
                if (reason == TPMQ_OK) {
                        EVP_DigestFinal_ex(ctx, digest, &dl);
                        if (!ct_memeq(digest, dl, a.pcr_digest, a.pcr_digest_len)) {
                                reason = TPMQ_PCR_DIGEST_MISMATCH;
                                _cleanup_free_ char *want = hex_encode(a.pcr_digest, a.pcr_digest_len);
                                _cleanup_free_ char *got = hex_encode(digest, dl);
                                detail(ret_detail, "%s (%s bank): quoted %s, PCR values hash to %s",
                                       tpmq_reason_to_string(reason), tpmq_alg_name(pcrs->alg), want ?: "?",
                                       got ?: "?");
                        }
                }
        }
        if (ret_reason)
                *ret_reason = reason;
        if (reason != TPMQ_OK && ret_detail && !*ret_detail)
                detail(ret_detail, "%s", tpmq_reason_to_string(reason));
        return reason == TPMQ_OK ? 0 : -EBADMSG;
}
