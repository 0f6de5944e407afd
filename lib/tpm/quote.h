/* SPDX-License-Identifier: Apache-2.0 */
/* TPM 2.0 quote verification, from raw TCG structures (TCG TPM 2.0 Library Part 2, Structures):
 * TPMS_ATTEST (§10.12.12), TPMT_SIGNATURE (§11.3.4), TPMT_PUBLIC (§12.2.4). Parsers are written for
 * untrusted input: every read is bounds-checked before it advances.
 *
 * The quote is checked against the PCR values of exactly the bank it quotes: the caller says which
 * bank its PCRs are from, and a quote over another bank is refused ("quote-bank confusion":
 * Constellation's verifier accepted whichever bank's quote passed, then compared SHA-256 PCRs). */
#pragma once

#include <openssl/evp.h>

#include "basic/macro.h"

#define TPM_ALG_RSA 0x0001
#define TPM_ALG_SHA1 0x0004
#define TPM_ALG_SHA256 0x000B
#define TPM_ALG_SHA384 0x000C
#define TPM_ALG_SHA512 0x000D
#define TPM_ALG_NULL 0x0010
#define TPM_ALG_RSASSA 0x0014
#define TPM_ALG_RSAPSS 0x0016
#define TPM_ALG_ECDSA 0x0018
#define TPM_ALG_ECC 0x0023
#define TPM_GENERATED_VALUE 0xff544347u
#define TPM_ST_ATTEST_QUOTE 0x8018
#define TPM_ECC_NIST_P256 0x0003
#define TPM_ECC_NIST_P384 0x0004
#define TPM_ECC_NIST_P521 0x0005
#define TPMQ_NUM_PCRS 24
#define TPMQ_MAX_DIGEST 64
/* sizeof(TPMT_HA) (Part 2 §10.3.2): the largest TPM2B_DATA / TPM2B_NAME payload. */
#define TPMQ_MAX_TPM2B_DATA 66

/* TPMA_OBJECT bits (Part 2 §8.3.2). */
#define TPMQ_ATTR_FIXEDTPM 0x00000002u
#define TPMQ_ATTR_FIXEDPARENT 0x00000010u
#define TPMQ_ATTR_SENSITIVEDATAORIGIN 0x00000020u
#define TPMQ_ATTR_USERWITHAUTH 0x00000040u
#define TPMQ_ATTR_NODA 0x00000400u
#define TPMQ_ATTR_RESTRICTED 0x00010000u
#define TPMQ_ATTR_DECRYPT 0x00020000u
#define TPMQ_ATTR_SIGN_ENCRYPT 0x00040000u

typedef enum tpmq_reason {
        TPMQ_OK = 0,
        TPMQ_MALFORMED_ATTEST,    /* TPMS_ATTEST truncated or inconsistent */
        TPMQ_NOT_GENERATED,       /* magic is not TPM_GENERATED_VALUE: not made by a TPM */
        TPMQ_NOT_A_QUOTE,         /* attestation type is not TPM_ST_ATTEST_QUOTE */
        TPMQ_MALFORMED_SIGNATURE, /* TPMT_SIGNATURE truncated or unsupported */
        TPMQ_BAD_KEY,             /* AK public key unusable for this signature scheme */
        TPMQ_SIGNATURE_INVALID,   /* signature does not verify with the AK */
        TPMQ_NONCE_MISMATCH,      /* extraData is not the expected nonce */
        TPMQ_BANK_MISMATCH,       /* the quote covers another PCR bank than the values compared */
        TPMQ_PCR_MISSING,         /* the quote selects a PCR whose value was not given */
        TPMQ_PCR_DIGEST_MISMATCH, /* the given PCR values do not hash to the quoted pcrDigest */
        TPMQ_PCR_NOT_QUOTED,      /* a PCR value was given that the quote does not select (not vouched for) */
        TPMQ_PCR_SELECTION_EMPTY, /* the quote selects no PCR at all */
} tpmq_reason;

const char *tpmq_reason_to_string(tpmq_reason r);
const char *tpmq_alg_name(uint16_t alg);
size_t tpmq_digest_size(uint16_t alg);

typedef struct tpmq_pcr_selection {
        uint16_t hash;
        uint32_t mask; /* bit i = PCR i */
} tpmq_pcr_selection;

typedef struct tpmq_attest {
        uint32_t magic;
        uint16_t type;
        uint8_t extra_data[TPMQ_MAX_TPM2B_DATA];
        size_t extra_data_len;
        uint64_t clock;
        uint32_t reset_count, restart_count;
        uint64_t firmware_version;
        size_t n_selections;
        tpmq_pcr_selection selections[4];
        uint8_t pcr_digest[TPMQ_MAX_DIGEST];
        size_t pcr_digest_len;
} tpmq_attest;

typedef struct tpmq_signature {
        uint16_t sig_alg;
        uint16_t hash_alg;
        uint8_t sig[512]; /* RSA: the signature; ECDSA: DER ECDSA-Sig-Value built from r, s */
        size_t sig_len;
} tpmq_signature;

/* A PCR bank as the verifier knows it (read from the TPM or from an attestation document). */
typedef struct tpmq_pcr_bank {
        uint16_t alg;
        bool present[TPMQ_NUM_PCRS];
        uint8_t value[TPMQ_NUM_PCRS][TPMQ_MAX_DIGEST];
} tpmq_pcr_bank;

/* What a TPMT_PUBLIC says about a key besides the key itself (Part 2 §12.2.4). */
typedef struct tpmq_public_info {
        uint16_t type;       /* TPM_ALG_RSA or TPM_ALG_ECC */
        uint16_t name_alg;   /* TPMI_ALG_HASH */
        uint32_t attributes; /* TPMA_OBJECT */
        uint16_t scheme;     /* TPM_ALG_RSASSA, _RSAPSS, _ECDSA or TPM_ALG_NULL */
        uint16_t scheme_hash;
        uint16_t bits;       /* RSA: keyBits; ECC: curve size */
        /* Name = nameAlg || H_nameAlg(TPMT_PUBLIC) (Part 1 §16); empty when nameAlg is unknown. */
        uint8_t name[2 + TPMQ_MAX_DIGEST];
        size_t name_len;
} tpmq_public_info;

/* Parse one structure each; the whole buffer must be that structure (trailing bytes are refused).
 * -EBADMSG when malformed or truncated, -EOPNOTSUPP for an algorithm we do not verify. */
int tpmq_attest_parse(const uint8_t *buf, size_t len, tpmq_attest *ret);
int tpmq_signature_parse(const uint8_t *buf, size_t len, tpmq_signature *ret);
/* TPMT_PUBLIC of an RSA (>= 2048 bit) or NIST-P ECC key -> EVP_PKEY. */
int tpmq_public_parse(const uint8_t *buf, size_t len, EVP_PKEY **ret);
/* Same, and also returns the attributes, scheme and Name. ret_info may be NULL. */
int tpmq_public_parse_info(const uint8_t *buf, size_t len, EVP_PKEY **ret, tpmq_public_info *ret_info);
/* An AK given as PEM (SubjectPublicKeyInfo, "-----BEGIN PUBLIC KEY-----"), as TPMT_PUBLIC bytes, or
 * as TPM2B_PUBLIC (size-prefixed TPMT_PUBLIC, as tpm2_createak -u / tpm2_readpublic -o write it). ret_info is filled only for TPMT_PUBLIC (*ret_has_info tells which); both may be NULL. */
int tpmq_load_ak(const uint8_t *buf, size_t len, EVP_PKEY **ret, tpmq_public_info *ret_info, bool *ret_has_info);
/* True for a key the TPM only lets sign data it produced itself (restricted + sign, not decrypt):
 * only such a key gives TPM_GENERATED_VALUE in a TPMS_ATTEST its meaning (Part 1 §25.2.3). */
bool tpmq_public_is_restricted_signer(const tpmq_public_info *info);

/* Reads "index hex" lines (one PCR per line, as in testdata's pcrs_*.txt) into a bank of `alg`.
 * Values must have the bank's digest size. -EBADMSG with the line in *ret_line on error. */
int tpmq_pcr_bank_parse_text(const char *text, size_t len, uint16_t alg, tpmq_pcr_bank *ret, unsigned *ret_line);
/* TPM_ALG id of "sha1", "sha256", "sha384", "sha512"; 0 if unknown. */
uint16_t tpmq_alg_from_name(const char *name);

/* Verifies a quote: structure, TPM magic and type, signature with ak, extraData == nonce, the
 * quote selects pcrs->alg (and only that bank), the PCRs present in pcrs are exactly the quote's
 * selection (not empty; a value the quote does not cover is refused, as go-tpm-tools refuses "given
 * PCRs and quote do not have the same PCR selection"), and the quoted pcrDigest equals the hash
 * (the signature's hash algorithm) of the selected PCR values in order. On success every PCR
 * present in pcrs is vouched for by the quote.
 * Returns 0 or -EBADMSG with the reason and a detail naming the field. ret_reason and
 * ret_detail (both optional) are always set: the detail is NULL on success, a malloc'd sentence
 * naming the field, bank and PCR otherwise (caller frees). */
int tpmq_verify_quote(const uint8_t *attest, size_t attest_len, const uint8_t *sig, size_t sig_len, EVP_PKEY *ak,
                      const tpmq_pcr_bank *pcrs, const uint8_t *nonce, size_t nonce_len, tpmq_reason *ret_reason,
                      char **ret_detail);
