/* SPDX-License-Identifier: Apache-2.0 */
/* AMD SEV-SNP attestation report verification.
 *
 * References:
 *  - AMD SEV Secure Nested Paging Firmware ABI Specification (pub. 56860), "ATTESTATION_REPORT
 *    Structure" table (report layout), "TCB_VERSION Structure" (Milan/Genoa and Turin layouts),
 *    "GUEST_POLICY Structure".
 *  - AMD Versioned Chip Endorsement Key (VCEK) Certificate and KDS Interface Specification
 *    (pub. 57230): the VCEK/VLEK X.509 extensions under 1.3.6.1.4.1.3704.1.
 *
 * Trust: the AMD root keys (ARK) for Milan, Genoa and Turin are pinned in the library by the
 * SHA-256 of their DER certificate. A chain (ASK or ASVK, then ARK, as AMD KDS serves it) is
 * verified once into a snp_chain; a VCEK or VLEK is verified once under it into a snp_signer;
 * the signer then verifies any number of reports cheaply (one SHA-384 and one ECDSA P-384
 * verification each).
 *
 * Every function that can reject fills a struct snp_verdict with a reason code and a detail
 * line ("reported_tcb.microcode: certificate says 93, report says 94"); the detail never holds
 * secrets (reports and certificates are public). */
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <time.h>

#include "basic/macro.h"

#define SNP_REPORT_SIZE 1184u    /* ABI spec: ATTESTATION_REPORT is 0x4A0 bytes */
#define SNP_SIGNED_SIZE 0x2A0u   /* the signature covers bytes 0x000..0x29F */
#define SNP_CERT_MAX_SIZE (64u * 1024)  /* a VCEK/VLEK (DER or PEM) */
#define SNP_CHAIN_MAX_SIZE (64u * 1024) /* ASK/ASVK + ARK PEM */

enum snp_reason {
        SNP_REASON_OK = 0,
        SNP_REASON_INTERNAL,          /* allocation or crypto library failure */
        SNP_REASON_INVALID_ARGUMENT,  /* caller error (NULL, bad option) */
        SNP_REASON_REPORT_SIZE,       /* report is not exactly 1184 bytes (truncated or trailing data) */
        SNP_REASON_REPORT_VERSION,    /* report version is not 2, 3 or 5 */
        SNP_REASON_REPORT_MALFORMED,  /* reserved field non-zero, unknown signature algorithm or key */
        SNP_REASON_CERT_MALFORMED,    /* VCEK/VLEK unparseable, or its AMD extensions are */
        SNP_REASON_CHAIN_MALFORMED,   /* ASK/ASVK + ARK PEM unparseable or of the wrong shape */
        SNP_REASON_ARK_NOT_PINNED,    /* no certificate of the chain is a pinned AMD root */
        SNP_REASON_CHAIN_SIGNATURE,   /* ASK not signed by ARK, VCEK not signed by ASK, ... */
        SNP_REASON_CERT_EXPIRED,      /* a certificate's notAfter is before the verification time */
        SNP_REASON_CERT_NOT_YET_VALID,/* a certificate's notBefore is after the verification time */
        SNP_REASON_SIGNER_KIND,       /* report signed by VLEK but a VCEK chain given, or vice versa */
        SNP_REASON_PRODUCT_MISMATCH,  /* report CPUID, certificate productName and ARK disagree */
        SNP_REASON_REPORT_SIGNATURE,  /* the ECDSA P-384 signature over the report is invalid */
        SNP_REASON_TCB_MISMATCH,      /* certificate TCB extensions differ from reported_tcb */
        SNP_REASON_CHIP_ID_MISMATCH,  /* VCEK hwID differs from the report's chip_id */
        SNP_REASON_TCB_TOO_LOW,       /* a TCB component is below the configured minimum */
        SNP_REASON_POLICY_DEBUG,      /* guest policy allows debugging */
        SNP_REASON_POLICY,            /* another guest policy requirement failed (migration agent) */
        SNP_REASON_VMPL,              /* report VMPL is not an allowed one */
        SNP_REASON_REPORT_DATA,       /* report_data differs from the expected value */
        SNP_REASON_MEASUREMENT,       /* measurement differs from the expected value */
        SNP_REASON_HOST_DATA,         /* host_data differs from the expected value */
        SNP_REASON_BINDING,           /* report_data does not bind the given key / runtime data */
        SNP_REASON_ID_KEY_DIGEST,     /* id_key_digest is not one of the accepted ones */
        SNP_REASON_EVIDENCE_MALFORMED,/* the container around the report (instance info JSON) is */
        _SNP_REASON_MAX,
};

/* Stable, short, lower-case name ("report-signature", "tcb-too-low", ...). */
const char *snp_reason_to_string(enum snp_reason reason);

struct snp_verdict {
        enum snp_reason reason;
        char detail[384]; /* which field, expected vs got; "" when reason is OK */
};

enum snp_product {
        SNP_PRODUCT_UNKNOWN = 0,
        SNP_PRODUCT_MILAN,
        SNP_PRODUCT_GENOA,
        SNP_PRODUCT_TURIN,
        _SNP_PRODUCT_MAX,
};
/* "Milan", "Genoa", "Turin", "unknown". */
const char *snp_product_to_string(enum snp_product product);

enum snp_signer_kind {
        SNP_SIGNER_VCEK = 0, /* report flags SIGNING_KEY = 0 */
        SNP_SIGNER_VLEK = 1, /* report flags SIGNING_KEY = 1 */
};
const char *snp_signer_kind_to_string(enum snp_signer_kind kind);

/* A decoded TCB_VERSION. fmc is only meaningful on Turin (has_fmc). */
struct snp_tcb {
        bool has_fmc;
        uint8_t fmc;
        uint8_t bootloader;
        uint8_t tee;
        uint8_t snp;
        uint8_t microcode;
};

/* ABI spec TCB_VERSION: Milan and Genoa: byte 0 bootloader, 1 TEE, 6 SNP, 7 microcode.
 * Turin: byte 0 FMC, 1 bootloader, 2 TEE, 3 SNP, 7 microcode. UNKNOWN decodes as Milan. */
void snp_tcb_decode(uint64_t raw, enum snp_product product, struct snp_tcb *ret);
/* "bl=2 tee=0 snp=6 ucode=93" (Turin prefixes "fmc=1 "). buf of at least 48 bytes. */
const char *snp_tcb_format(const struct snp_tcb *tcb, char *buf, size_t size);

/* GUEST_POLICY bits (ABI spec "GUEST_POLICY Structure"). */
#define SNP_POLICY_SMT (UINT64_C(1) << 16)
#define SNP_POLICY_RESERVED_ONE (UINT64_C(1) << 17)
#define SNP_POLICY_MIGRATE_MA (UINT64_C(1) << 18)
#define SNP_POLICY_DEBUG (UINT64_C(1) << 19)
#define SNP_POLICY_SINGLE_SOCKET (UINT64_C(1) << 20)

/* The parsed report: every field of the ABI table, in host byte order. */
struct snp_report {
        uint32_t version;
        uint32_t guest_svn;
        uint64_t policy;
        uint8_t family_id[16];
        uint8_t image_id[16];
        uint32_t vmpl;
        uint32_t signature_algo;
        uint64_t current_tcb_raw;
        uint64_t platform_info;
        uint32_t flags;
        bool author_key_en;
        bool mask_chip_id;
        enum snp_signer_kind signer;
        uint8_t report_data[64];
        uint8_t measurement[48];
        uint8_t host_data[32];
        uint8_t id_key_digest[48];
        uint8_t author_key_digest[48];
        uint8_t report_id[32];
        uint8_t report_id_ma[32];
        uint64_t reported_tcb_raw;
        uint8_t cpuid_fam_id, cpuid_mod_id, cpuid_step; /* v3+; zero in v2 */
        uint8_t chip_id[64];
        uint64_t committed_tcb_raw;
        uint8_t current_build, current_minor, current_major;
        uint8_t committed_build, committed_minor, committed_major;
        uint64_t launch_tcb_raw;
        uint64_t launch_mit_vector;  /* v5+ */
        uint64_t current_mit_vector; /* v5+ */
        uint8_t signature_r[72];     /* little-endian, as in the report */
        uint8_t signature_s[72];

        /* Derived. product: from the CPUID bytes (v3+), else from the certificate once verified.
         * The decoded TCBs use that product's layout. */
        enum snp_product product;
        struct snp_tcb current_tcb, reported_tcb, committed_tcb, launch_tcb;
};

/* Parses exactly SNP_REPORT_SIZE bytes of outside input: size, version (2, 3, 5), signature
 * algorithm (1 = ECDSA P-384 with SHA-384), signing key (VCEK or VLEK), reserved fields zero,
 * policy bit 17 set. Does not check the signature. -EBADMSG / -EPROTONOSUPPORT on rejection. */
int snp_report_parse(const uint8_t *data, size_t len, struct snp_report *ret, struct snp_verdict *verdict);
/* The product a v3+ report's CPUID bytes name, UNKNOWN if zero (v2) or unrecognised. */
enum snp_product snp_product_from_cpuid(uint8_t family, uint8_t model);

/* AMD's certificate extensions on a VCEK/VLEK (KDS spec, OIDs 1.3.6.1.4.1.3704.1.*). */
struct snp_cert_info {
        char product_name[32]; /* productName (1.2), e.g. "Milan-B0", "Genoa", "Turin" */
        enum snp_product product;
        struct snp_tcb tcb;    /* blSPL 3.1, teeSPL 3.2, snpSPL 3.3, ucodeSPL 3.8, fmcSPL 3.9 */
        uint8_t hwid[64];      /* hwID (1.4): 64 bytes, Turin 8; absent on VLEKs */
        size_t hwid_len;
        bool has_csp_id;       /* cspID (1.5): VLEKs name the cloud provider */
        char csp_id[256];
};
/* Parses the AMD extensions of a DER or PEM certificate (outside input, at most
 * SNP_CERT_MAX_SIZE). Does not verify anything. -EBADMSG on malformed input. */
int snp_cert_info_parse(const uint8_t *cert, size_t len, struct snp_cert_info *ret, struct snp_verdict *verdict);

/* Options. A zeroed struct is the strict default: current time, no minimum TCB, debug refused,
 * migration agent refused, VMPL 0 only, no expected values. */
struct snp_options {
        bool time_set;  /* verify certificate validity at `time` instead of now */
        time_t time;
        bool min_tcb_set;
        struct snp_tcb min_tcb; /* each component of current, reported, committed and launch TCB
                                 * must be >= this (fmc only on Turin) */
        bool allow_debug;
        bool allow_migrate_ma;
        uint8_t allowed_vmpls;  /* bit n allows VMPL n; 0 means VMPL 0 only */
        const uint8_t *expected_report_data; /* 64 bytes, or NULL */
        const uint8_t *expected_measurement; /* 48 bytes, or NULL */
        const uint8_t *expected_host_data;   /* 32 bytes, or NULL */
        /* If n_accepted_id_key_digests > 0, id_key_digest (SHA-384 of the ID key that signed the
         * launch ID block) must equal one of these (Constellation acceptedKeyDigests, policy
         * "equal"); an all-zero digest (no ID block) then fails too. */
        const uint8_t (*accepted_id_key_digests)[48];
        size_t n_accepted_id_key_digests;
};

/* A verified ASK/ASVK + pinned ARK. Immutable after creation: may be shared between threads. */
typedef struct snp_chain snp_chain;
/* pem: the KDS cert_chain (ASK or ASVK, then ARK; either order accepted), at most
 * SNP_CHAIN_MAX_SIZE. Checks the ARK pin, ARK self-signature, ASK signature by the ARK, both
 * validity periods at the option time. */
int snp_chain_new(const uint8_t *pem, size_t len, const struct snp_options *opts, snp_chain **ret,
                  struct snp_verdict *verdict);
snp_chain *snp_chain_free(snp_chain *chain);
DEFINE_TRIVIAL_CLEANUP_FUNC(snp_chain *, snp_chain_free);
enum snp_product snp_chain_product(const snp_chain *chain);
enum snp_signer_kind snp_chain_signer_kind(const snp_chain *chain);

/* A VCEK or VLEK verified under a chain, with its extensions parsed and its key ready. Holds a
 * prepared verification context: use one signer from one thread at a time. */
typedef struct snp_signer snp_signer;
/* cert: DER or PEM. Checks the signature by the ASK/ASVK, the validity period, the key type
 * (EC P-384), the productName against the chain, the kind (VCEK hwID / VLEK). */
int snp_signer_new(const snp_chain *chain, const uint8_t *cert, size_t len, const struct snp_options *opts,
                   snp_signer **ret, struct snp_verdict *verdict);
snp_signer *snp_signer_free(snp_signer *signer);
DEFINE_TRIVIAL_CLEANUP_FUNC(snp_signer *, snp_signer_free);
const struct snp_cert_info *snp_signer_info(const snp_signer *signer);

/* Verifies one report: parse, signer kind, product, validity of the whole chain at the option
 * time, signature, certificate TCB == reported_tcb, hwID == chip_id, then the options (guest
 * policy, VMPL, minimum TCB, expected values). On success *ret_report (if not NULL) gets the
 * parsed report. Returns 0, or a negative errno with verdict->reason saying why. */
int snp_signer_verify_report(snp_signer *signer, const uint8_t *report, size_t len,
                             const struct snp_options *opts, struct snp_report *ret_report,
                             struct snp_verdict *verdict);

/* The compiled-in AMD KDS chain (lib/snp/roots) for a product and signer kind, checked like a
 * caller's chain. */
/* The pinned AMD root certificate (ARK) of a product from the built-in chains; NULL if unknown.
 * Callers own the result (X509_free). */
X509 *snp_builtin_ark(enum snp_product product);
int snp_chain_new_builtin(enum snp_product product, enum snp_signer_kind kind, const struct snp_options *opts,
                          snp_chain **ret, struct snp_verdict *verdict);

/* One-shot: chain + signer + report. chain_pem NULL: the built-in chain for the certificate's
 * productName and the report's signing key (VCEK/VLEK). */
int snp_verify(const uint8_t *report, size_t report_len, const uint8_t *cert, size_t cert_len,
               const uint8_t *chain_pem, size_t chain_len, const struct snp_options *opts,
               struct snp_report *ret_report, struct snp_verdict *verdict);

/* A thread-safe cache of verified chains + signers (up to 32, least recently used evicted),
 * keyed by SHA-256 of the exact certificate and chain bytes: snp_verify() for services that see
 * the same VCEKs repeatedly. Certificate validity is still checked per report at opts->time. */
typedef struct snp_verifier snp_verifier;
int snp_verifier_new(snp_verifier **ret);
snp_verifier *snp_verifier_free(snp_verifier *verifier);
DEFINE_TRIVIAL_CLEANUP_FUNC(snp_verifier *, snp_verifier_free);
int snp_verifier_verify(snp_verifier *verifier, const uint8_t *report, size_t report_len, const uint8_t *cert,
                        size_t cert_len, const uint8_t *chain_pem, size_t chain_len, const struct snp_options *opts,
                        struct snp_report *ret_report, struct snp_verdict *verdict);
void snp_verifier_stats(snp_verifier *verifier, uint64_t *ret_hits, uint64_t *ret_misses);

/* Is sha256 (of a DER certificate) one of the pinned AMD roots (amd-roots/FINGERPRINTS.md)?
 * Returns the product, or SNP_PRODUCT_UNKNOWN if not pinned. */
enum snp_product snp_ark_pinned(const uint8_t sha256[32]);

/* AMD KDS URLs (go-sev-guest kds.VCEKCertURL form): the VCEK for a report's chip and
 * reported_tcb (-EINVAL if the report's product is unknown, i.e. a v2 report not yet verified),
 * and the cert_chain for a product and signer kind. Malloc'd. */
int snp_kds_vcek_url(const struct snp_report *report, char **ret);
int snp_kds_chain_url(enum snp_product product, enum snp_signer_kind kind, char **ret);
