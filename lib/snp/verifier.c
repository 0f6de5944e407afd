/* SPDX-License-Identifier: Apache-2.0 */
/* Built-in AMD chains and the caching verifier.
 *
 * Built-in chains: the KDS cert_chain responses for Milan, Genoa and Turin (VCEK and VLEK) are
 * compiled in (lib/snp/roots, embedded by CMake), and go through the same checks as a caller's
 * chain (ARK pin, ARK self-signature, ASK/ASVK signature, validity).
 *
 * Cache: a service that sees the same few VCEKs again and again (one per host) keeps the
 * verified chain + signer keyed by SHA-256 of the exact certificate and chain bytes, so a
 * report costs one SHA-384 and one ECDSA verification. Validity is re-checked per report at
 * the caller's time; failures are never cached. */
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <pthread.h>

#include "snp-roots.h"
#include "snp/snp-internal.h"

static const struct {
        enum snp_product product;
        enum snp_signer_kind kind;
        const unsigned char *pem;
        size_t len;
} builtin_chains[] = {
        { SNP_PRODUCT_MILAN, SNP_SIGNER_VCEK, snp_root_milan_vcek, sizeof(snp_root_milan_vcek) },
        { SNP_PRODUCT_MILAN, SNP_SIGNER_VLEK, snp_root_milan_vlek, sizeof(snp_root_milan_vlek) },
        { SNP_PRODUCT_GENOA, SNP_SIGNER_VCEK, snp_root_genoa_vcek, sizeof(snp_root_genoa_vcek) },
        { SNP_PRODUCT_GENOA, SNP_SIGNER_VLEK, snp_root_genoa_vlek, sizeof(snp_root_genoa_vlek) },
        { SNP_PRODUCT_TURIN, SNP_SIGNER_VCEK, snp_root_turin_vcek, sizeof(snp_root_turin_vcek) },
        { SNP_PRODUCT_TURIN, SNP_SIGNER_VLEK, snp_root_turin_vlek, sizeof(snp_root_turin_vlek) },
};

X509 *snp_builtin_ark(enum snp_product product) {
        for (size_t i = 0; i < ELEMENTSOF(builtin_chains); i++) {
                if (builtin_chains[i].product != product)
                        continue;
                BIO *bio = BIO_new_mem_buf(builtin_chains[i].pem, (int) builtin_chains[i].len);
                if (!bio)
                        return NULL;
                X509 *found = NULL, *c;
                while (!found && (c = PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
                        uint8_t md[32];
                        unsigned n = 0;
                        if (X509_digest(c, EVP_sha256(), md, &n) == 1 && n == 32 && snp_ark_pinned(md) == product)
                                found = c;
                        else
                                X509_free(c);
                }
                ERR_clear_error();
                BIO_free(bio);
                return found;
        }
        return NULL;
}

int snp_chain_new_builtin(enum snp_product product, enum snp_signer_kind kind, const struct snp_options *opts,
                          snp_chain **ret, struct snp_verdict *v) {
        for (size_t i = 0; i < ELEMENTSOF(builtin_chains); i++)
                if (builtin_chains[i].product == product && builtin_chains[i].kind == kind) {
                        _cleanup_(snp_chain_freep) snp_chain *c = NULL;
                        int r = snp_chain_new(builtin_chains[i].pem, builtin_chains[i].len, opts, &c, v);
                        if (r < 0)
                                return r;
                        if (snp_chain_product(c) != product || snp_chain_signer_kind(c) != kind)
                                return snp_fail(v, SNP_REASON_INTERNAL, "built-in chain table inconsistent");
                        *ret = TAKE_PTR(c);
                        return 0;
                }
        return snp_fail(v, SNP_REASON_INVALID_ARGUMENT, "no built-in chain for %s %s", snp_product_to_string(product),
                        snp_signer_kind_to_string(kind));
}

/* Which built-in chain a report + certificate need: the kind from the report's SIGNING_KEY, the
 * product from the certificate's productName. */
static int builtin_for(const uint8_t *report, size_t report_len, const uint8_t *cert, size_t cert_len,
                       const struct snp_options *opts, snp_chain **ret, struct snp_verdict *v) {
        struct snp_report r;
        int ret_val = snp_report_parse(report, report_len, &r, v);
        if (ret_val < 0)
                return ret_val;
        struct snp_cert_info info;
        ret_val = snp_cert_info_parse(cert, cert_len, &info, v);
        if (ret_val < 0)
                return ret_val;
        return snp_chain_new_builtin(info.product, r.signer, opts, ret, v);
}

int snp_verify(const uint8_t *report, size_t report_len, const uint8_t *cert, size_t cert_len,
               const uint8_t *chain_pem, size_t chain_len, const struct snp_options *opts,
               struct snp_report *ret_report, struct snp_verdict *v) {
        _cleanup_(snp_chain_freep) snp_chain *chain = NULL;
        _cleanup_(snp_signer_freep) snp_signer *signer = NULL;
        int r = chain_pem ? snp_chain_new(chain_pem, chain_len, opts, &chain, v)
                          : builtin_for(report, report_len, cert, cert_len, opts, &chain, v);
        if (r < 0)
                return r;
        r = snp_signer_new(chain, cert, cert_len, opts, &signer, v);
        if (r < 0)
                return r;
        return snp_signer_verify_report(signer, report, report_len, opts, ret_report, v);
}

/* Verifier cache */

#define VERIFIER_SLOTS 32

struct slot {
        bool used;
        uint8_t key[32];
        uint64_t last_used;
        snp_chain *chain;
        snp_signer *signer;
};

struct snp_verifier {
        pthread_mutex_t lock;
        uint64_t clock;
        uint64_t hits, misses;
        struct slot slots[VERIFIER_SLOTS];
};

int snp_verifier_new(snp_verifier **ret) {
        snp_verifier *vf = calloc(1, sizeof(*vf));
        if (!vf)
                return -ENOMEM;
        if (pthread_mutex_init(&vf->lock, NULL) != 0) {
                free(vf);
                return -ENOMEM;
        }
        *ret = vf;
        return 0;
}

static void slot_clear(struct slot *s) {
        snp_signer_free(s->signer);
        snp_chain_free(s->chain);
        *s = (struct slot) {};
}

snp_verifier *snp_verifier_free(snp_verifier *vf) {
        if (!vf)
                return NULL;
        for (size_t i = 0; i < VERIFIER_SLOTS; i++)
                slot_clear(&vf->slots[i]);
        pthread_mutex_destroy(&vf->lock);
        free(vf);
        return NULL;
}

void snp_verifier_stats(snp_verifier *vf, uint64_t *ret_hits, uint64_t *ret_misses) {
        pthread_mutex_lock(&vf->lock);
        *ret_hits = vf->hits;
        *ret_misses = vf->misses;
        pthread_mutex_unlock(&vf->lock);
}

/* SHA-256 over length-prefixed cert and chain (or, for the built-in chain, a marker and the
 * report's signer kind, which selects the chain together with the certificate). */
static int cache_key(const uint8_t *cert, size_t cert_len, const uint8_t *chain, size_t chain_len,
                     enum snp_signer_kind builtin_kind, uint8_t key[32]) {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;
        uint64_t lens[2] = { cert_len, chain ? chain_len : UINT64_MAX - (uint64_t) builtin_kind };
        unsigned n = 0;
        int ok = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 && EVP_DigestUpdate(ctx, lens, sizeof(lens)) == 1 &&
                 EVP_DigestUpdate(ctx, cert, cert_len) == 1 && (!chain || EVP_DigestUpdate(ctx, chain, chain_len) == 1) &&
                 EVP_DigestFinal_ex(ctx, key, &n) == 1 && n == 32;
        EVP_MD_CTX_free(ctx);
        return ok ? 0 : -ENOMEM;
}

int snp_verifier_verify(snp_verifier *vf, const uint8_t *report, size_t report_len, const uint8_t *cert,
                        size_t cert_len, const uint8_t *chain_pem, size_t chain_len, const struct snp_options *opts,
                        struct snp_report *ret_report, struct snp_verdict *v) {
        if (!vf || !report || !cert)
                return snp_fail(v, SNP_REASON_INVALID_ARGUMENT, "no verifier, report or certificate");
        if (cert_len > SNP_CERT_MAX_SIZE || (chain_pem && chain_len > SNP_CHAIN_MAX_SIZE))
                return snp_fail(v, cert_len > SNP_CERT_MAX_SIZE ? SNP_REASON_CERT_MALFORMED : SNP_REASON_CHAIN_MALFORMED,
                                "certificate or chain larger than %u bytes", SNP_CERT_MAX_SIZE);

        enum snp_signer_kind kind = SNP_SIGNER_VCEK;
        if (!chain_pem) {
                struct snp_report parsed;
                int r = snp_report_parse(report, report_len, &parsed, v);
                if (r < 0)
                        return r;
                kind = parsed.signer;
        }
        uint8_t key[32];
        if (cache_key(cert, cert_len, chain_pem, chain_len, kind, key) < 0)
                return snp_fail(v, SNP_REASON_INTERNAL, "SHA-256 failed");

        pthread_mutex_lock(&vf->lock);
        struct slot *slot = NULL, *victim = &vf->slots[0];
        for (size_t i = 0; i < VERIFIER_SLOTS; i++) {
                struct slot *s = &vf->slots[i];
                if (s->used && memcmp(s->key, key, sizeof(key)) == 0) {
                        slot = s;
                        break;
                }
                if (!s->used)
                        victim = s; /* prefer a free slot */
                else if (victim->used && s->last_used < victim->last_used)
                        victim = s; /* else the least recently used */
        }
        int r;
        if (slot)
                vf->hits++;
        else {
                vf->misses++;
                _cleanup_(snp_chain_freep) snp_chain *chain = NULL;
                _cleanup_(snp_signer_freep) snp_signer *signer = NULL;
                r = chain_pem ? snp_chain_new(chain_pem, chain_len, opts, &chain, v)
                              : builtin_for(report, report_len, cert, cert_len, opts, &chain, v);
                if (r >= 0)
                        r = snp_signer_new(chain, cert, cert_len, opts, &signer, v);
                if (r < 0) {
                        pthread_mutex_unlock(&vf->lock);
                        return r;
                }
                slot_clear(victim);
                *victim = (struct slot) { .used = true, .chain = TAKE_PTR(chain), .signer = TAKE_PTR(signer) };
                memcpy(victim->key, key, sizeof(key));
                slot = victim;
        }
        slot->last_used = ++vf->clock;
        /* The signer's prepared context is used under the lock. */
        r = snp_signer_verify_report(slot->signer, report, report_len, opts, ret_report, v);
        pthread_mutex_unlock(&vf->lock);
        return r;
}
