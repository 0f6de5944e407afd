/* SPDX-License-Identifier: Apache-2.0 */
/* TPM 2.0 issuing side over ESYS (tpm2-tss): the attestation key as Constellation makes it, quotes,
 * PCR reads and extensions, the firmware event log. Library ct-tpm-esys, so that verifiers (ct-tpm)
 * do not link ESYS.
 *
 * There is no resource manager in front of swtpm's TCP socket (and a node may use /dev/tpm0), so
 * every transient object this code loads is flushed before the call returns; the only object it
 * keeps is the persistent AK. */
#pragma once

#include "basic/macro.h"
#include "tpm/quote.h"

/* go-tpm-tools client.DefaultAKRSAHandle, used by Constellation's qemu-vtpm issuer. */
#define TPM_AK_HANDLE 0x81008F01u
/* Constellation marks a bootstrapped node by TPM2_PCR_Event(PCR 15, clusterID) (reference §5.4). */
#define TPM_PCR_CLUSTER_ID 15u
#define TPM_DEFAULT_TCTI "device:/dev/tpmrm0"
#define TPM_EVENT_LOG_PATH "/sys/kernel/security/tpm0/binary_bios_measurements"
#define TPM_MAX_BANKS 4u

typedef struct tpm_ctx tpm_ctx;

/* Opens a TCTI (e.g. "swtpm:host=127.0.0.1,port=2321"; NULL = TPM_DEFAULT_TCTI). -EIO when the
 * TCTI or ESYS cannot start (*ret_error, optional, says why: malloc'd, caller frees). */
int tpm_open(const char *tcti_conf, tpm_ctx **ret, char **ret_error);
tpm_ctx *tpm_close(tpm_ctx *t);
DEFINE_TRIVIAL_CLEANUP_FUNC(tpm_ctx *, tpm_close);
/* The last failure of a call on t, as "<ESYS call>: <TSS2_RC decoded>"; "" if none. */
const char *tpm_last_error(const tpm_ctx *t);

/* PCR banks with at least one allocated PCR (TPM2_GetCapability(TPM_CAP_PCRS)), in TPM order. */
int tpm_get_banks(tpm_ctx *t, uint16_t ret_algs[TPM_MAX_BANKS], size_t *ret_n);

/* Loads the AK from TPM_AK_HANDLE if its public area matches Constellation's template (go-tpm-tools
 * AttestationKeyRSA: RSA-2048, restricted signing, RSASSA-SHA256, owner hierarchy); otherwise creates
 * it with TPM2_CreatePrimary, evicts whatever was at the handle and persists the new key there.
 * *ret_created (optional) tells which. Idempotent within a tpm_ctx. */
int tpm_ak_load_or_create(tpm_ctx *t, bool *ret_created);
/* Marshalled TPMT_PUBLIC of the AK (malloc'd). Loads/creates the AK first if needed. */
int tpm_ak_public(tpm_ctx *t, uint8_t **ret, size_t *ret_len);

typedef struct tpm_quote_result {
        uint8_t *attest; /* TPMS_ATTEST (TPM2B_ATTEST payload) */
        size_t attest_len;
        uint8_t *sig;    /* marshalled TPMT_SIGNATURE */
        size_t sig_len;
        tpmq_pcr_bank pcrs; /* the values of the quoted PCRs, read in the same call */
} tpm_quote_result;
void tpm_quote_result_done(tpm_quote_result *q);

/* TPM2_Quote with the AK over pcr_mask of bank, qualifyingData = nonce (<= 64 bytes), and the PCR
 * values. PCRs are read before the quote and checked against its pcrDigest; on a race (a PCR
 * extended in between) the pair is taken again, up to 3 times (-EAGAIN after). */
int tpm_quote(tpm_ctx *t, uint16_t bank, uint32_t pcr_mask, const uint8_t *nonce, size_t nonce_len,
              tpm_quote_result *ret);

/* TPM2_PCR_Read of pcr_mask in bank (several calls: the TPM returns at most 8 digests each). */
int tpm_pcr_read(tpm_ctx *t, uint16_t bank, uint32_t pcr_mask, tpmq_pcr_bank *ret);
/* TPM2_PCR_Event: extends H_bank(data) into pcr of every bank (data <= 1024 bytes). */
int tpm_pcr_event(tpm_ctx *t, unsigned pcr, const uint8_t *data, size_t len);
/* TPM2_PCR_Extend of one digest into one bank. */
int tpm_pcr_extend(tpm_ctx *t, unsigned pcr, uint16_t alg, const uint8_t *digest, size_t len);
/* Constellation's MarkNodeAsBootstrapped: TPM2_PCR_Event(PCR 15, clusterID). */
int tpm_mark_bootstrapped(tpm_ctx *t, const uint8_t *cluster_id, size_t len);

/* Reads the binary firmware event log (NULL = TPM_EVENT_LOG_PATH; at most EVENTLOG_MAX_SIZE). A
 * missing file gives an empty log (swtpm has none). */
int tpm_read_event_log(const char *path, uint8_t **ret, size_t *ret_len);
