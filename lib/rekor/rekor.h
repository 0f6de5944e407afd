/* SPDX-License-Identifier: Apache-2.0 */
/* Rekor transparency-log entries (hashedrekord v0.0.1), verified offline:
 *  - logID = SHA-256(DER SPKI of the Rekor key);
 *  - the signed entry timestamp (SET): ECDSA over canonical JSON
 *    {"body":<base64 body>,"integratedTime":N,"logID":"<hex>","logIndex":N};
 *  - the inclusion proof to the tree root (RFC 9162 §2.1.3.2; leaf = SHA-256(0x00 || body));
 *  - the signed checkpoint (signed note: text up to the blank line, "— <origin> base64(keyhint||sig)")
 *    for the same tree size and root;
 *  - that the body names the artifact's SHA-256 and the signer's public key.
 * Entries come from a Sigstore bundle (v0.1–v0.3) or from Rekor's REST API
 * (POST /api/v1/index/retrieve, GET /api/v1/log/entries/<uuid>), the latter fetched with lib/http. */
#pragma once

#include <openssl/evp.h>

#include "basic/macro.h"

#define REKOR_MAX_DOCUMENT (1024 * 1024)
#define REKOR_MAX_PROOF_HASHES 64
/* Online lookup: entries of the index answer tried, at most (one GET each). Anyone may log entries
 * for the same artifact hash; beyond this many foreign entries the lookup fails closed. */
#define REKOR_MAX_LOOKUP_ENTRIES 32

typedef enum rekor_reason {
        REKOR_OK = 0,
        REKOR_MALFORMED,                     /* bundle/entry JSON missing fields or badly encoded */
        REKOR_LOG_ID_MISMATCH,               /* entry logged by another log than the given key's */
        REKOR_SET_INVALID,                   /* signed entry timestamp does not verify */
        REKOR_INCLUSION_PROOF_INVALID,       /* proof does not lead to the root hash */
        REKOR_CHECKPOINT_MALFORMED,          /* checkpoint note cannot be parsed */
        REKOR_CHECKPOINT_SIGNATURE_INVALID,  /* no valid signature by the log's key on the checkpoint */
        REKOR_CHECKPOINT_ROOT_MISMATCH,      /* checkpoint is for another tree than the proof */
        REKOR_BODY_MALFORMED,                /* body is not a hashedrekord v0.0.1 entry */
        REKOR_BODY_HASH_MISMATCH,            /* body names another artifact hash */
        REKOR_BODY_KEY_MISMATCH,             /* body names another signing key */
        REKOR_BODY_SIGNATURE_MISMATCH,       /* body carries another signature than ours */
        REKOR_NOT_FOUND,                     /* online: no entry for the artifact */
        REKOR_UNREACHABLE,                   /* online: the log could not be asked */
        REKOR_NO_VERIFIED_ENTRY,             /* online: entries for the artifact, none of them ours */
} rekor_reason;

const char *rekor_reason_to_string(rekor_reason r);

typedef struct rekor_entry {
        uint8_t *body;
        size_t body_len;
        int64_t integrated_time;
        uint8_t log_id[32];
        int64_t log_index; /* global index, what the SET signs */
        uint8_t *set;      /* DER ECDSA */
        size_t set_len;
        bool has_proof;
        int64_t proof_index, tree_size;
        uint8_t root[32];
        uint8_t (*hashes)[32];
        size_t n_hashes;
        char *checkpoint;
} rekor_entry;

void rekor_entry_done(rekor_entry *e);
/* Sigstore bundle JSON (first tlog entry). */
int rekor_bundle_parse(const uint8_t *buf, size_t len, rekor_entry *ret, char **ret_error);
/* Rekor REST LogEntry: {"<uuid>": {"body", "integratedTime", "logID", "logIndex", "verification": …}}. */
int rekor_api_entry_parse(const uint8_t *buf, size_t len, rekor_entry *ret, char **ret_error);

/* Checks logID, SET, inclusion proof and checkpoint against the log's public key. Returns 0 or
 * -EBADMSG with *ret_reason (and, where useful, *ret_detail). */
int rekor_verify_entry(const rekor_entry *e, EVP_PKEY *log_key, rekor_reason *ret_reason, char **ret_detail);
/* Checks that the body is a hashedrekord for artifact_sha256 signed by signer_key; if sig_b64 is
 * given, also that it is that exact signature. */
int rekor_verify_body(const rekor_entry *e, const uint8_t artifact_sha256[32], EVP_PKEY *signer_key,
                      const char *sig_b64, rekor_reason *ret_reason);

/* Online: asks the index of the log at rekor_url for artifact_sha256 and verifies the entries it
 * names (entry and body), in order, up to REKOR_MAX_LOOKUP_ENTRIES, until one verifies with
 * signer_key: entries others logged for the same hash under their keys do not block ours. Any
 * failure, including an unreachable log, is an error with its reason: REKOR_NOT_FOUND (no entry),
 * the entry's own reason (one entry), REKOR_NO_VERIFIED_ENTRY (several, none ours; the detail says
 * how many were tried and why the first failed). */
int rekor_lookup_and_verify(const char *rekor_url, const uint8_t artifact_sha256[32], EVP_PKEY *signer_key,
                            EVP_PKEY *log_key, rekor_reason *ret_reason, char **ret_detail);
