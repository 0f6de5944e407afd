/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdio.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "basic/cleanup-openssl.h"
#include "basic/fileio.h"
#include "basic/log.h"
#include "basic/secret.h"
#include "tpm/eventlog.h"
#include "tpm/tpm.h"

struct tpm_ctx {
        TSS2_TCTI_CONTEXT *tcti;
        ESYS_CONTEXT *esys;
        ESYS_TR ak; /* ESYS_TR_NONE until loaded */
        char error[256];
};

_printf_(2, 3) static int seterr(tpm_ctx *t, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(t->error, sizeof t->error, fmt, ap);
        va_end(ap);
        log_debug("tpm: %s", t->error);
        return -EIO;
}

static int esys_fail(tpm_ctx *t, const char *call, TSS2_RC rc) {
        return seterr(t, "%s: %s", call, Tss2_RC_Decode(rc));
}

static void esys_freep(void *p) {
        Esys_Free(*(void **) p);
}
#define _cleanup_esys_ _cleanup_(esys_freep)

const char *tpm_last_error(const tpm_ctx *t) {
        return t->error;
}

tpm_ctx *tpm_close(tpm_ctx *t) {
        if (!t)
                return NULL;
        if (t->esys) {
                /* Closes only ESYS's handle for the persistent AK: the key stays in the TPM. */
                if (t->ak != ESYS_TR_NONE)
                        Esys_TR_Close(t->esys, &t->ak);
                Esys_Finalize(&t->esys);
        }
        if (t->tcti)
                Tss2_TctiLdr_Finalize(&t->tcti);
        free(t);
        return NULL;
}

int tpm_open(const char *tcti_conf, tpm_ctx **ret, char **ret_error) {
        _cleanup_(tpm_closep) tpm_ctx *t = calloc(1, sizeof *t);
        TSS2_RC rc;
        if (!t)
                return -ENOMEM;
        t->ak = ESYS_TR_NONE;
        if (!tcti_conf)
                tcti_conf = TPM_DEFAULT_TCTI;
        rc = Tss2_TctiLdr_Initialize(tcti_conf, &t->tcti);
        if (rc == TSS2_RC_SUCCESS) {
                rc = Esys_Initialize(&t->esys, t->tcti, NULL);
                if (rc != TSS2_RC_SUCCESS)
                        esys_fail(t, "Esys_Initialize", rc);
        } else
                esys_fail(t, "Tss2_TctiLdr_Initialize", rc);
        if (rc != TSS2_RC_SUCCESS) {
                if (ret_error && asprintf(ret_error, "TPM at \"%s\": %s", tcti_conf, t->error) < 0)
                        *ret_error = NULL;
                return -EIO;
        }
        *ret = TAKE_PTR(t);
        return 0;
}

int tpm_get_banks(tpm_ctx *t, uint16_t ret_algs[TPM_MAX_BANKS], size_t *ret_n) {
        _cleanup_esys_ TPMS_CAPABILITY_DATA *cap = NULL;
        TPMI_YES_NO more;
        TSS2_RC rc = Esys_GetCapability(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_PCRS, 0, 1,
                                        &more, &cap);
        if (rc != TSS2_RC_SUCCESS)
                return esys_fail(t, "Esys_GetCapability(PCRS)", rc);
        size_t n = 0;
        const TPML_PCR_SELECTION *s = &cap->data.assignedPCR;
        for (UINT32 i = 0; i < s->count && i < TPM2_NUM_PCR_BANKS; i++) {
                bool any = false;
                for (UINT8 k = 0; k < s->pcrSelections[i].sizeofSelect && k < TPM2_PCR_SELECT_MAX; k++)
                        any |= s->pcrSelections[i].pcrSelect[k] != 0;
                if (any && tpmq_digest_size(s->pcrSelections[i].hash) && n < TPM_MAX_BANKS)
                        ret_algs[n++] = s->pcrSelections[i].hash;
        }
        *ret_n = n;
        return 0;
}

/* go-tpm-tools AKTemplateRSA (client/template.go): FlagSignerDefault, RSASSA-SHA256, 2048 bits. */
static TPM2B_PUBLIC ak_template(void) {
        TPM2B_PUBLIC p = {
                .publicArea = {
                        .type = TPM2_ALG_RSA,
                        .nameAlg = TPM2_ALG_SHA256,
                        .objectAttributes = TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_RESTRICTED |
                                            TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                            TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH,
                        .parameters.rsaDetail = {
                                .symmetric = { .algorithm = TPM2_ALG_NULL },
                                .scheme = { .scheme = TPM2_ALG_RSASSA, .details.rsassa.hashAlg = TPM2_ALG_SHA256 },
                                .keyBits = 2048,
                                .exponent = 0,
                        },
                },
        };
        return p;
}

/* go-tpm-tools Public.MatchesTemplate: everything but `unique` equal. */
static bool matches_template(const TPMT_PUBLIC *a, const TPMT_PUBLIC *tmpl) {
        const TPMS_RSA_PARMS *x = &a->parameters.rsaDetail, *y = &tmpl->parameters.rsaDetail;
        return a->type == tmpl->type && a->nameAlg == tmpl->nameAlg && a->objectAttributes == tmpl->objectAttributes &&
               a->authPolicy.size == 0 && x->symmetric.algorithm == y->symmetric.algorithm &&
               x->scheme.scheme == y->scheme.scheme && x->scheme.details.rsassa.hashAlg == y->scheme.details.rsassa.hashAlg &&
               x->keyBits == y->keyBits && (x->exponent == y->exponent || (x->exponent | y->exponent) == 65537);
}

int tpm_ak_load_or_create(tpm_ctx *t, bool *ret_created) {
        TPM2B_PUBLIC tmpl = ak_template();
        ESYS_TR persistent = ESYS_TR_NONE, transient = ESYS_TR_NONE;
        TSS2_RC rc;
        int r;

        if (t->ak != ESYS_TR_NONE) {
                if (ret_created)
                        *ret_created = false;
                return 0;
        }
        /* Ask whether the handle is in use first: Esys_TR_FromTPMPublic on a free handle makes
         * tpm2-tss log an error to stderr, and library code stays quiet. */
        bool present = false;
        {
                _cleanup_esys_ TPMS_CAPABILITY_DATA *cap = NULL;
                TPMI_YES_NO more;
                rc = Esys_GetCapability(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES,
                                        TPM_AK_HANDLE, 1, &more, &cap);
                if (rc != TSS2_RC_SUCCESS)
                        return esys_fail(t, "Esys_GetCapability(HANDLES)", rc);
                present = cap->data.handles.count > 0 && cap->data.handles.handle[0] == TPM_AK_HANDLE;
        }
        if (present) {
                rc = Esys_TR_FromTPMPublic(t->esys, TPM_AK_HANDLE, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                           &persistent);
                if (rc != TSS2_RC_SUCCESS)
                        return esys_fail(t, "Esys_TR_FromTPMPublic(AK)", rc);
                _cleanup_esys_ TPM2B_PUBLIC *pub = NULL;
                rc = Esys_ReadPublic(t->esys, persistent, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL, NULL);
                if (rc != TSS2_RC_SUCCESS) {
                        Esys_TR_Close(t->esys, &persistent);
                        return esys_fail(t, "Esys_ReadPublic(AK)", rc);
                }
                if (matches_template(&pub->publicArea, &tmpl.publicArea)) {
                        t->ak = persistent;
                        if (ret_created)
                                *ret_created = false;
                        return 0;
                }
                /* Another key sits at the handle: evict it so ours can take its place. */
                ESYS_TR gone = ESYS_TR_NONE;
                rc = Esys_EvictControl(t->esys, ESYS_TR_RH_OWNER, persistent, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                       ESYS_TR_NONE, TPM_AK_HANDLE, &gone);
                if (rc != TSS2_RC_SUCCESS) {
                        Esys_TR_Close(t->esys, &persistent);
                        return esys_fail(t, "Esys_EvictControl(evict old AK)", rc);
                }
        }

        TPM2B_SENSITIVE_CREATE sens = { 0 };
        TPM2B_DATA outside = { 0 };
        TPML_PCR_SELECTION creation_pcr = { 0 };
        rc = Esys_CreatePrimary(t->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl,
                                &outside, &creation_pcr, &transient, NULL, NULL, NULL, NULL);
        if (rc != TSS2_RC_SUCCESS)
                return esys_fail(t, "Esys_CreatePrimary(AK)", rc);
        rc = Esys_EvictControl(t->esys, ESYS_TR_RH_OWNER, transient, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                               TPM_AK_HANDLE, &persistent);
        r = rc == TSS2_RC_SUCCESS ? 0 : esys_fail(t, "Esys_EvictControl(persist AK)", rc);
        /* The transient copy is no longer needed either way: flush it (no resource manager). */
        rc = Esys_FlushContext(t->esys, transient);
        if (rc != TSS2_RC_SUCCESS && r == 0)
                r = esys_fail(t, "Esys_FlushContext(AK)", rc);
        if (r < 0) {
                if (persistent != ESYS_TR_NONE)
                        Esys_TR_Close(t->esys, &persistent);
                return r;
        }
        t->ak = persistent;
        if (ret_created)
                *ret_created = true;
        return 0;
}

int tpm_ak_public(tpm_ctx *t, uint8_t **ret, size_t *ret_len) {
        _cleanup_esys_ TPM2B_PUBLIC *pub = NULL;
        int r = tpm_ak_load_or_create(t, NULL);
        if (r < 0)
                return r;
        TSS2_RC rc = Esys_ReadPublic(t->esys, t->ak, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL, NULL);
        if (rc != TSS2_RC_SUCCESS)
                return esys_fail(t, "Esys_ReadPublic(AK)", rc);
        uint8_t buf[sizeof(TPMT_PUBLIC)];
        size_t off = 0;
        rc = Tss2_MU_TPMT_PUBLIC_Marshal(&pub->publicArea, buf, sizeof buf, &off);
        if (rc != TSS2_RC_SUCCESS)
                return esys_fail(t, "Tss2_MU_TPMT_PUBLIC_Marshal", rc);
        uint8_t *out = malloc(off);
        if (!out)
                return -ENOMEM;
        memcpy(out, buf, off);
        *ret = out;
        *ret_len = off;
        return 0;
}

static void selection_for(TPML_PCR_SELECTION *s, uint16_t bank, uint32_t mask) {
        *s = (TPML_PCR_SELECTION){ .count = 1 };
        s->pcrSelections[0].hash = bank;
        s->pcrSelections[0].sizeofSelect = 3;
        s->pcrSelections[0].pcrSelect[0] = (uint8_t) mask;
        s->pcrSelections[0].pcrSelect[1] = (uint8_t) (mask >> 8);
        s->pcrSelections[0].pcrSelect[2] = (uint8_t) (mask >> 16);
}

int tpm_pcr_read(tpm_ctx *t, uint16_t bank, uint32_t pcr_mask, tpmq_pcr_bank *ret) {
        tpmq_pcr_bank b = { .alg = bank };
        size_t dlen = tpmq_digest_size(bank);
        uint32_t todo = pcr_mask;
        if (dlen == 0 || pcr_mask >> TPMQ_NUM_PCRS)
                return -EINVAL;
        /* Each TPM2_PCR_Read returns at most 8 digests (TPML_DIGEST); ask again for the rest. Bounded:
         * each round must make progress. */
        for (unsigned round = 0; todo && round <= TPMQ_NUM_PCRS; round++) {
                TPML_PCR_SELECTION sel, *out_sel = NULL;
                TPML_DIGEST *values = NULL;
                selection_for(&sel, bank, todo);
                TSS2_RC rc = Esys_PCR_Read(t->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &sel, NULL, &out_sel,
                                           &values);
                if (rc != TSS2_RC_SUCCESS)
                        return esys_fail(t, "Esys_PCR_Read", rc);
                uint32_t got = 0;
                if (out_sel->count == 1 && out_sel->pcrSelections[0].hash == bank)
                        for (unsigned k = 0; k < out_sel->pcrSelections[0].sizeofSelect && k < 3; k++)
                                got |= (uint32_t) out_sel->pcrSelections[0].pcrSelect[k] << (8 * k);
                got &= todo;
                unsigned v = 0;
                int r = 0;
                for (unsigned i = 0; i < TPMQ_NUM_PCRS && r == 0; i++) {
                        if (!(got & (1u << i)))
                                continue;
                        if (v >= values->count || values->digests[v].size != dlen)
                                r = seterr(t, "TPM2_PCR_Read: %s PCR %u missing or of the wrong size",
                                           tpmq_alg_name(bank), i);
                        else {
                                memcpy(b.value[i], values->digests[v].buffer, dlen);
                                b.present[i] = true;
                                v++;
                        }
                }
                Esys_Free(out_sel);
                Esys_Free(values);
                if (r < 0)
                        return r;
                if (got == 0)
                        return seterr(t, "TPM2_PCR_Read: bank %s does not have PCRs 0x%06x", tpmq_alg_name(bank),
                                      todo);
                todo &= ~got;
        }
        *ret = b;
        return 0;
}

void tpm_quote_result_done(tpm_quote_result *q) {
        if (!q)
                return;
        free(q->attest);
        free(q->sig);
        q->attest = q->sig = NULL;
}

int tpm_quote(tpm_ctx *t, uint16_t bank, uint32_t pcr_mask, const uint8_t *nonce, size_t nonce_len,
              tpm_quote_result *ret) {
        TPM2B_DATA qualifying = { 0 };
        TPMT_SIG_SCHEME scheme = { .scheme = TPM2_ALG_NULL }; /* the key's own scheme */
        TPML_PCR_SELECTION sel;
        int r;

        if (nonce_len > sizeof qualifying.buffer || tpmq_digest_size(bank) == 0 || pcr_mask == 0 ||
            pcr_mask >> TPMQ_NUM_PCRS)
                return -EINVAL;
        qualifying.size = (UINT16) nonce_len;
        if (nonce_len)
                memcpy(qualifying.buffer, nonce, nonce_len);
        selection_for(&sel, bank, pcr_mask);
        r = tpm_ak_load_or_create(t, NULL);
        if (r < 0)
                return r;

        for (unsigned attempt = 0; attempt < 3; attempt++) {
                tpmq_pcr_bank pcrs;
                r = tpm_pcr_read(t, bank, pcr_mask, &pcrs);
                if (r < 0)
                        return r;
                _cleanup_esys_ TPM2B_ATTEST *quoted = NULL;
                _cleanup_esys_ TPMT_SIGNATURE *sig = NULL;
                TSS2_RC rc = Esys_Quote(t->esys, t->ak, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &qualifying,
                                        &scheme, &sel, &quoted, &sig);
                if (rc != TSS2_RC_SUCCESS)
                        return esys_fail(t, "Esys_Quote", rc);

                /* Are the values read the ones quoted? pcrDigest uses the signing hash (Part 3 §18.4). */
                tpmq_attest a;
                if (tpmq_attest_parse(quoted->attestationData, quoted->size, &a) < 0 || a.n_selections != 1)
                        return seterr(t, "TPM2_Quote returned an unparsable TPMS_ATTEST");
                const EVP_MD *md = sig->sigAlg == TPM2_ALG_RSASSA ? EVP_get_digestbyname(tpmq_alg_name(sig->signature.rsassa.hash)) :
                                   sig->sigAlg == TPM2_ALG_RSAPSS ? EVP_get_digestbyname(tpmq_alg_name(sig->signature.rsapss.hash)) :
                                   sig->sigAlg == TPM2_ALG_ECDSA ? EVP_get_digestbyname(tpmq_alg_name(sig->signature.ecdsa.hash)) :
                                                                   NULL;
                if (!md)
                        return seterr(t, "TPM2_Quote: unsupported signature scheme 0x%04x", sig->sigAlg);
                _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
                uint8_t digest[EVP_MAX_MD_SIZE];
                unsigned dl = 0;
                if (!ctx || EVP_DigestInit_ex(ctx, md, NULL) != 1)
                        return -ENOMEM;
                for (unsigned i = 0; i < TPMQ_NUM_PCRS; i++)
                        if (pcr_mask & (1u << i))
                                EVP_DigestUpdate(ctx, pcrs.value[i], tpmq_digest_size(bank));
                if (EVP_DigestFinal_ex(ctx, digest, &dl) != 1)
                        return -ENOMEM;
                if (!ct_memeq(digest, dl, a.pcr_digest, a.pcr_digest_len))
                        continue; /* a PCR changed between read and quote: take both again */

                uint8_t sbuf[sizeof(TPMT_SIGNATURE)];
                size_t soff = 0;
                rc = Tss2_MU_TPMT_SIGNATURE_Marshal(sig, sbuf, sizeof sbuf, &soff);
                if (rc != TSS2_RC_SUCCESS)
                        return esys_fail(t, "Tss2_MU_TPMT_SIGNATURE_Marshal", rc);
                tpm_quote_result q = { .pcrs = pcrs };
                q.attest = malloc(quoted->size);
                q.sig = malloc(soff);
                if (!q.attest || !q.sig) {
                        tpm_quote_result_done(&q);
                        return -ENOMEM;
                }
                memcpy(q.attest, quoted->attestationData, quoted->size);
                q.attest_len = quoted->size;
                memcpy(q.sig, sbuf, soff);
                q.sig_len = soff;
                *ret = q;
                return 0;
        }
        seterr(t, "PCRs kept changing while quoting");
        return -EAGAIN;
}

int tpm_pcr_event(tpm_ctx *t, unsigned pcr, const uint8_t *data, size_t len) {
        TPM2B_EVENT ev = { 0 };
        if (pcr >= TPMQ_NUM_PCRS || len > sizeof ev.buffer)
                return -EINVAL;
        ev.size = (UINT16) len;
        if (len)
                memcpy(ev.buffer, data, len);
        _cleanup_esys_ TPML_DIGEST_VALUES *digests = NULL;
        TSS2_RC rc = Esys_PCR_Event(t->esys, ESYS_TR_PCR0 + pcr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &ev,
                                    &digests);
        if (rc != TSS2_RC_SUCCESS)
                return esys_fail(t, "Esys_PCR_Event", rc);
        return 0;
}

int tpm_pcr_extend(tpm_ctx *t, unsigned pcr, uint16_t alg, const uint8_t *digest, size_t len) {
        TPML_DIGEST_VALUES v = { .count = 1 };
        if (pcr >= TPMQ_NUM_PCRS || tpmq_digest_size(alg) == 0 || len != tpmq_digest_size(alg))
                return -EINVAL;
        v.digests[0].hashAlg = alg;
        memcpy(&v.digests[0].digest, digest, len);
        TSS2_RC rc = Esys_PCR_Extend(t->esys, ESYS_TR_PCR0 + pcr, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &v);
        if (rc != TSS2_RC_SUCCESS)
                return esys_fail(t, "Esys_PCR_Extend", rc);
        return 0;
}

int tpm_mark_bootstrapped(tpm_ctx *t, const uint8_t *cluster_id, size_t len) {
        return tpm_pcr_event(t, TPM_PCR_CLUSTER_ID, cluster_id, len);
}

int tpm_read_event_log(const char *path, uint8_t **ret, size_t *ret_len) {
        uint8_t *buf = NULL;
        size_t len = 0;
        int r = read_full_file(path ?: TPM_EVENT_LOG_PATH, EVENTLOG_MAX_SIZE, &buf, &len);
        if (r == -ENOENT) {
                buf = calloc(1, 1);
                if (!buf)
                        return -ENOMEM;
                len = 0;
        } else if (r < 0)
                return r;
        *ret = buf;
        *ret_len = len;
        return 0;
}
