/* SPDX-License-Identifier: Apache-2.0 */
/* SEV-SNP ATTESTATION_REPORT parsing (AMD SEV-SNP Firmware ABI spec, pub. 56860, table
 * "ATTESTATION_REPORT Structure"). The report is outside input: fixed size first, then version,
 * then every field at its fixed offset, then the reserved ranges must be zero. */
#include <stdarg.h>
#include <stdio.h>

#include "snp/snp-internal.h"

/* Offsets from the ABI table. */
enum {
        OFF_VERSION = 0x000,
        OFF_GUEST_SVN = 0x004,
        OFF_POLICY = 0x008,
        OFF_FAMILY_ID = 0x010,
        OFF_IMAGE_ID = 0x020,
        OFF_VMPL = 0x030,
        OFF_SIGNATURE_ALGO = 0x034,
        OFF_CURRENT_TCB = 0x038,
        OFF_PLATFORM_INFO = 0x040,
        OFF_FLAGS = 0x048,      /* bit 0 AUTHOR_KEY_EN, bit 1 MASK_CHIP_ID, bits 4:2 SIGNING_KEY */
        OFF_RESERVED0 = 0x04C,  /* 4 bytes */
        OFF_REPORT_DATA = 0x050,
        OFF_MEASUREMENT = 0x090,
        OFF_HOST_DATA = 0x0C0,
        OFF_ID_KEY_DIGEST = 0x0E0,
        OFF_AUTHOR_KEY_DIGEST = 0x110,
        OFF_REPORT_ID = 0x140,
        OFF_REPORT_ID_MA = 0x160,
        OFF_REPORTED_TCB = 0x180,
        OFF_CPUID_FAM_ID = 0x188, /* v3+: CPUID_FAM_ID, CPUID_MOD_ID, CPUID_STEP */
        OFF_RESERVED1 = 0x18B,    /* to 0x19F */
        OFF_CHIP_ID = 0x1A0,
        OFF_COMMITTED_TCB = 0x1E0,
        OFF_CURRENT_VERSION = 0x1E8, /* build, minor, major, reserved */
        OFF_COMMITTED_VERSION = 0x1EC,
        OFF_LAUNCH_TCB = 0x1F0,
        OFF_LAUNCH_MIT_VECTOR = 0x1F8, /* v5+ */
        OFF_CURRENT_MIT_VECTOR = 0x200, /* v5+ */
        OFF_RESERVED3_V5 = 0x208,
        OFF_SIGNATURE = 0x2A0, /* r (72 bytes LE), s (72 bytes LE), reserved to 0x49F */
};

#define SIGNING_KEY_VCEK 0u
#define SIGNING_KEY_VLEK 1u
#define SIGNATURE_ALGO_ECDSA_P384_SHA384 1u

void snp_verdict_set(struct snp_verdict *v, enum snp_reason reason, const char *fmt, ...) {
        if (!v)
                return;
        v->reason = reason;
        v->detail[0] = 0;
        if (fmt) {
                va_list ap;
                va_start(ap, fmt);
                (void) vsnprintf(v->detail, sizeof(v->detail), fmt, ap);
                va_end(ap);
        }
}

int snp_fail(struct snp_verdict *v, enum snp_reason reason, const char *fmt, ...) {
        if (v) {
                v->reason = reason;
                v->detail[0] = 0;
                va_list ap;
                va_start(ap, fmt);
                (void) vsnprintf(v->detail, sizeof(v->detail), fmt, ap);
                va_end(ap);
        }
        return snp_reason_errno(reason);
}

int snp_reason_errno(enum snp_reason reason) {
        switch (reason) {
        case SNP_REASON_OK:
                return 0;
        case SNP_REASON_INTERNAL:
                return -ENOMEM;
        case SNP_REASON_INVALID_ARGUMENT:
                return -EINVAL;
        case SNP_REASON_REPORT_VERSION:
                return -EPROTONOSUPPORT;
        case SNP_REASON_REPORT_SIZE:
        case SNP_REASON_REPORT_MALFORMED:
        case SNP_REASON_CERT_MALFORMED:
        case SNP_REASON_CHAIN_MALFORMED:
        case SNP_REASON_EVIDENCE_MALFORMED:
                return -EBADMSG;
        case SNP_REASON_CERT_EXPIRED:
        case SNP_REASON_CERT_NOT_YET_VALID:
                return -EKEYEXPIRED;
        case SNP_REASON_ARK_NOT_PINNED:
        case SNP_REASON_CHAIN_SIGNATURE:
        case SNP_REASON_REPORT_SIGNATURE:
        case SNP_REASON_SIGNER_KIND:
                return -EKEYREJECTED;
        default:
                return -EPERM;
        }
}

static const char *const reason_names[_SNP_REASON_MAX] = {
        [SNP_REASON_OK] = "ok",
        [SNP_REASON_INTERNAL] = "internal-error",
        [SNP_REASON_INVALID_ARGUMENT] = "invalid-argument",
        [SNP_REASON_REPORT_SIZE] = "report-size",
        [SNP_REASON_REPORT_VERSION] = "report-version",
        [SNP_REASON_REPORT_MALFORMED] = "report-malformed",
        [SNP_REASON_CERT_MALFORMED] = "cert-malformed",
        [SNP_REASON_CHAIN_MALFORMED] = "chain-malformed",
        [SNP_REASON_ARK_NOT_PINNED] = "ark-not-pinned",
        [SNP_REASON_CHAIN_SIGNATURE] = "chain-signature",
        [SNP_REASON_CERT_EXPIRED] = "cert-expired",
        [SNP_REASON_CERT_NOT_YET_VALID] = "cert-not-yet-valid",
        [SNP_REASON_SIGNER_KIND] = "signer-kind",
        [SNP_REASON_PRODUCT_MISMATCH] = "product-mismatch",
        [SNP_REASON_REPORT_SIGNATURE] = "report-signature",
        [SNP_REASON_TCB_MISMATCH] = "tcb-mismatch",
        [SNP_REASON_CHIP_ID_MISMATCH] = "chip-id-mismatch",
        [SNP_REASON_TCB_TOO_LOW] = "tcb-too-low",
        [SNP_REASON_POLICY_DEBUG] = "policy-debug",
        [SNP_REASON_POLICY] = "policy",
        [SNP_REASON_VMPL] = "vmpl",
        [SNP_REASON_REPORT_DATA] = "report-data",
        [SNP_REASON_MEASUREMENT] = "measurement",
        [SNP_REASON_HOST_DATA] = "host-data",
        [SNP_REASON_BINDING] = "binding",
        [SNP_REASON_ID_KEY_DIGEST] = "id-key-digest",
        [SNP_REASON_EVIDENCE_MALFORMED] = "evidence-malformed",
};

const char *snp_reason_to_string(enum snp_reason reason) {
        if ((unsigned) reason >= ELEMENTSOF(reason_names) || !reason_names[reason])
                return "unknown";
        return reason_names[reason];
}

const char *snp_product_to_string(enum snp_product product) {
        switch (product) {
        case SNP_PRODUCT_MILAN:
                return "Milan";
        case SNP_PRODUCT_GENOA:
                return "Genoa";
        case SNP_PRODUCT_TURIN:
                return "Turin";
        default:
                return "unknown";
        }
}

const char *snp_signer_kind_to_string(enum snp_signer_kind kind) {
        return kind == SNP_SIGNER_VLEK ? "VLEK" : "VCEK";
}

enum snp_product snp_product_from_cpuid(uint8_t family, uint8_t model) {
        /* Family 19h: Milan is model 0xh, Genoa 1xh (and the Genoa-derived Ax parts); family 1Ah
         * models 0xh-1xh are Turin (go-sev-guest abi.go, AMD processor programming references). */
        if (family == 0x19) {
                if (model <= 0x0F)
                        return SNP_PRODUCT_MILAN;
                if ((model >= 0x10 && model <= 0x1F) || (model >= 0xA0 && model <= 0xAF))
                        return SNP_PRODUCT_GENOA;
        } else if (family == 0x1A && model <= 0x1F)
                return SNP_PRODUCT_TURIN;
        return SNP_PRODUCT_UNKNOWN;
}

void snp_tcb_decode(uint64_t raw, enum snp_product product, struct snp_tcb *ret) {
        uint8_t b[8];
        for (size_t i = 0; i < 8; i++)
                b[i] = (uint8_t) (raw >> (8 * i));
        if (product == SNP_PRODUCT_TURIN)
                *ret = (struct snp_tcb) {
                        .has_fmc = true, .fmc = b[0], .bootloader = b[1], .tee = b[2], .snp = b[3],
                        .microcode = b[7],
                };
        else
                *ret = (struct snp_tcb) {
                        .bootloader = b[0], .tee = b[1], .snp = b[6], .microcode = b[7],
                };
}

const char *snp_tcb_format(const struct snp_tcb *tcb, char *buf, size_t size) {
        if (tcb->has_fmc)
                (void) snprintf(buf, size, "fmc=%u bl=%u tee=%u snp=%u ucode=%u", tcb->fmc, tcb->bootloader,
                                tcb->tee, tcb->snp, tcb->microcode);
        else
                (void) snprintf(buf, size, "bl=%u tee=%u snp=%u ucode=%u", tcb->bootloader, tcb->tee, tcb->snp,
                                tcb->microcode);
        return buf;
}

void snp_report_set_product(struct snp_report *r, enum snp_product product) {
        r->product = product;
        snp_tcb_decode(r->current_tcb_raw, product, &r->current_tcb);
        snp_tcb_decode(r->reported_tcb_raw, product, &r->reported_tcb);
        snp_tcb_decode(r->committed_tcb_raw, product, &r->committed_tcb);
        snp_tcb_decode(r->launch_tcb_raw, product, &r->launch_tcb);
}

static uint32_t le32(const uint8_t *p) {
        return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

static uint64_t le64(const uint8_t *p) {
        return (uint64_t) le32(p) | (uint64_t) le32(p + 4) << 32;
}

/* Index of the first non-zero byte in [start, end), or -1. */
static ssize_t first_nonzero(const uint8_t *d, size_t start, size_t end) {
        for (size_t i = start; i < end; i++)
                if (d[i])
                        return (ssize_t) i;
        return -1;
}

int snp_report_parse(const uint8_t *d, size_t len, struct snp_report *ret, struct snp_verdict *v) {
        if (!d || !ret)
                return snp_fail(v, SNP_REASON_INVALID_ARGUMENT, "no report");
        /* Stage 1: exact size. A longer buffer (e.g. the 1204-byte Azure blob) must be cut by the
         * caller who knows the container format; silently ignoring trailing bytes hides bugs. */
        if (len != SNP_REPORT_SIZE)
                return snp_fail(v, SNP_REASON_REPORT_SIZE, "report is %zu bytes, expected %u", len,
                                SNP_REPORT_SIZE);

        /* Stage 2: version. v2 (ABI 1.51), v3 adds the CPUID bytes (ABI 1.55), v5 adds the
         * mitigation vectors (ABI 1.57). Each keeps the signature at 0x2A0. */
        struct snp_report r = { .version = le32(d + OFF_VERSION) };
        if (r.version != 2 && r.version != 3 && r.version != 5)
                return snp_fail(v, SNP_REASON_REPORT_VERSION, "version: %" PRIu32 " is not supported (2, 3, 5)",
                                r.version);

        /* Stage 3: fields. */
        r.guest_svn = le32(d + OFF_GUEST_SVN);
        r.policy = le64(d + OFF_POLICY);
        memcpy(r.family_id, d + OFF_FAMILY_ID, sizeof(r.family_id));
        memcpy(r.image_id, d + OFF_IMAGE_ID, sizeof(r.image_id));
        r.vmpl = le32(d + OFF_VMPL);
        r.signature_algo = le32(d + OFF_SIGNATURE_ALGO);
        r.current_tcb_raw = le64(d + OFF_CURRENT_TCB);
        r.platform_info = le64(d + OFF_PLATFORM_INFO);
        r.flags = le32(d + OFF_FLAGS);
        memcpy(r.report_data, d + OFF_REPORT_DATA, sizeof(r.report_data));
        memcpy(r.measurement, d + OFF_MEASUREMENT, sizeof(r.measurement));
        memcpy(r.host_data, d + OFF_HOST_DATA, sizeof(r.host_data));
        memcpy(r.id_key_digest, d + OFF_ID_KEY_DIGEST, sizeof(r.id_key_digest));
        memcpy(r.author_key_digest, d + OFF_AUTHOR_KEY_DIGEST, sizeof(r.author_key_digest));
        memcpy(r.report_id, d + OFF_REPORT_ID, sizeof(r.report_id));
        memcpy(r.report_id_ma, d + OFF_REPORT_ID_MA, sizeof(r.report_id_ma));
        r.reported_tcb_raw = le64(d + OFF_REPORTED_TCB);
        r.cpuid_fam_id = d[OFF_CPUID_FAM_ID];
        r.cpuid_mod_id = d[OFF_CPUID_FAM_ID + 1];
        r.cpuid_step = d[OFF_CPUID_FAM_ID + 2];
        memcpy(r.chip_id, d + OFF_CHIP_ID, sizeof(r.chip_id));
        r.committed_tcb_raw = le64(d + OFF_COMMITTED_TCB);
        r.current_build = d[OFF_CURRENT_VERSION];
        r.current_minor = d[OFF_CURRENT_VERSION + 1];
        r.current_major = d[OFF_CURRENT_VERSION + 2];
        r.committed_build = d[OFF_COMMITTED_VERSION];
        r.committed_minor = d[OFF_COMMITTED_VERSION + 1];
        r.committed_major = d[OFF_COMMITTED_VERSION + 2];
        r.launch_tcb_raw = le64(d + OFF_LAUNCH_TCB);
        if (r.version >= 5) {
                r.launch_mit_vector = le64(d + OFF_LAUNCH_MIT_VECTOR);
                r.current_mit_vector = le64(d + OFF_CURRENT_MIT_VECTOR);
        }
        memcpy(r.signature_r, d + OFF_SIGNATURE, sizeof(r.signature_r));
        memcpy(r.signature_s, d + OFF_SIGNATURE + sizeof(r.signature_r), sizeof(r.signature_s));

        /* Stage 4: validate. */
        if (r.signature_algo != SIGNATURE_ALGO_ECDSA_P384_SHA384)
                return snp_fail(v, SNP_REASON_REPORT_MALFORMED,
                                "signature_algo: %" PRIu32 " is not 1 (ECDSA P-384 with SHA-384)", r.signature_algo);
        if (r.flags & ~UINT32_C(0x1F))
                return snp_fail(v, SNP_REASON_REPORT_MALFORMED, "flags: reserved bits set (0x%" PRIx32 ")", r.flags);
        r.author_key_en = r.flags & 1u;
        r.mask_chip_id = r.flags & 2u;
        uint32_t signing_key = (r.flags >> 2) & 7u;
        if (signing_key == SIGNING_KEY_VCEK)
                r.signer = SNP_SIGNER_VCEK;
        else if (signing_key == SIGNING_KEY_VLEK)
                r.signer = SNP_SIGNER_VLEK;
        else
                /* 7 = unsigned report; others reserved. Neither can be verified. */
                return snp_fail(v, SNP_REASON_REPORT_MALFORMED, "flags.signing_key: %" PRIu32 " is neither VCEK (0) nor VLEK (1)",
                                signing_key);
        if (!(r.policy & SNP_POLICY_RESERVED_ONE))
                return snp_fail(v, SNP_REASON_REPORT_MALFORMED, "policy: reserved bit 17 must be 1 (0x%" PRIx64 ")",
                                r.policy);
        if (r.vmpl > 3)
                return snp_fail(v, SNP_REASON_REPORT_MALFORMED, "vmpl: %" PRIu32 " is not 0..3", r.vmpl);

        static const struct {
                size_t start, end;
                unsigned min_version, max_version;
        } reserved[] = {
                { OFF_RESERVED0, OFF_REPORT_DATA, 0, UINT32_MAX },
                { OFF_CPUID_FAM_ID, OFF_RESERVED1, 0, 2 }, /* CPUID bytes are reserved in v2 */
                { OFF_RESERVED1, OFF_CHIP_ID, 0, UINT32_MAX },
                { OFF_CURRENT_VERSION + 3, OFF_CURRENT_VERSION + 4, 0, UINT32_MAX },
                { OFF_COMMITTED_VERSION + 3, OFF_COMMITTED_VERSION + 4, 0, UINT32_MAX },
                { OFF_LAUNCH_MIT_VECTOR, OFF_SIGNATURE, 0, 4 },
                { OFF_RESERVED3_V5, OFF_SIGNATURE, 5, UINT32_MAX },
                { OFF_SIGNATURE + 144, SNP_REPORT_SIZE, 0, UINT32_MAX },
        };
        for (size_t i = 0; i < ELEMENTSOF(reserved); i++) {
                if (r.version < reserved[i].min_version || r.version > reserved[i].max_version)
                        continue;
                ssize_t at = first_nonzero(d, reserved[i].start, reserved[i].end);
                if (at >= 0)
                        return snp_fail(v, SNP_REASON_REPORT_MALFORMED,
                                        "reserved byte at offset 0x%zx is 0x%02x, must be zero", (size_t) at, d[at]);
        }

        snp_report_set_product(&r, snp_product_from_cpuid(r.cpuid_fam_id, r.cpuid_mod_id));
        *ret = r;
        snp_verdict_set(v, SNP_REASON_OK, NULL);
        return 0;
}
