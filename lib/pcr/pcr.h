/* SPDX-License-Identifier: Apache-2.0 */
/* PCR prediction: a simulated SHA-256 PCR bank with an event log, and the measured-boot model of a
 * unified kernel image (UKI) booted directly by UEFI firmware as EFI/BOOT/BOOTX64.EFI
 * (reference constellation.md §5.3; systemd v252 src/boot/efi/stub.c, measure.c,
 * src/boot/pcrphase.c; TCG PC Client Platform Firmware Profile §3.3.4 and §10 for the event
 * types):
 *   PCR 4  EV_EFI_ACTION "Calling EFI Application from Boot Option", EV_SEPARATOR (00000000),
 *          Authenticode SHA-256 of the UKI, Authenticode SHA-256 of its .linux section (the stub
 *          starts the kernel through LoadImage, which the firmware measures).
 *   PCR 9  the Linux EFI stub's LoadOptions (the command line as UTF-16LE with its NUL), then the
 *          initrd it hands over through LINUX_INITRD_MEDIA (the .initrd section).
 *   PCR 11 per UKI section in systemd-stub's order: SHA-256(name + NUL), SHA-256(section data,
 *          VirtualSize bytes); then, optionally, systemd-pcrphase's phase words.
 *   PCR 12 a command line the boot loader passed (only when it replaces the built-in one).
 *   PCR 8, 13, 15 untouched on this path (zero).
 * Symbols carry the pcr_ prefix; the pcr_values/pcr_result/pcr_verdict names belong to
 * lib/measurements and are not used here. */
#pragma once

#include <jansson.h>

#include "basic/macro.h"
#include "pe/pe.h"

#define PCR_DIGEST_SIZE 32U
#define PCR_COUNT 24U
/* The largest UKI read into memory (kernel + initrd). */
#define PCR_UKI_MAX_SIZE ((size_t) 1 << 30)
#define PCR_LOG_MAX_EVENTS 1024U

typedef struct pcr_event {
        unsigned pcr;
        uint8_t digest[PCR_DIGEST_SIZE];
        char *type;        /* TCG event type name, e.g. "EV_EFI_ACTION" */
        char *description; /* what was measured, for people */
        char *data_hex;    /* the event data as the log would carry it, hex (may be NULL) */
} pcr_event;

typedef struct pcr_log {
        uint8_t pcr[PCR_COUNT][PCR_DIGEST_SIZE];
        size_t n_events;
        pcr_event *events;
} pcr_log;

pcr_log *pcr_log_new(void);
pcr_log *pcr_log_free(pcr_log *log);
DEFINE_TRIVIAL_CLEANUP_FUNC(pcr_log *, pcr_log_free);

/* PCR[i] = SHA-256(PCR[i] || digest) (TPM 2.0 Part 1 §17.7 PCR extend) and one event appended.
 * data (may be NULL) is recorded hex-encoded, at most the first 256 bytes. -E2BIG past
 * PCR_LOG_MAX_EVENTS. */
int pcr_log_extend(pcr_log *log, unsigned pcr, const uint8_t digest[PCR_DIGEST_SIZE], const char *type,
                   const char *description, const void *data, size_t data_len);
/* Extends with SHA-256(data); records data when record_data. */
int pcr_log_measure(pcr_log *log, unsigned pcr, const void *data, size_t len, const char *type,
                    const char *description, bool record_data);

/* How the stub and the booted system behave. Zero-initialised means: systemd 252 stub, Secure
 * Boot off, no loader command line, kernel measures its command line into PCR 9, no pcrphase. */
typedef struct pcr_uki_options {
        /* systemd-stub major version: 252 measures .linux .osrel .cmdline .initrd .splash .dtb
         * .pcrpkey; 254 and later also .uname and .sbat (before .pcrpkey). 0 = 252. */
        unsigned stub_version;
        /* systemd-pcrphase words extended into PCR 11, colon separated, e.g.
         * "enter-initrd:leave-initrd:sysinit:ready" (systemd 252 units systemd-pcrphase-initrd,
         * -sysinit, systemd-pcrphase); NULL = units masked, as in Constellation. */
        const char *pcrphase;
        /* A command line the boot loader passes to the UKI (ASCII). systemd-stub uses and measures
         * it into PCR 12 only if Secure Boot is off or the UKI has no .cmdline. */
        const char *loader_cmdline;
        bool secure_boot;
        /* Older Linux EFI stubs do not measure LoadOptions into PCR 9. */
        bool no_kernel_cmdline_measurement;
} pcr_uki_options;

typedef struct pcr_uki_info {
        uint8_t uki_authenticode[PCR_DIGEST_SIZE];
        uint8_t linux_authenticode[PCR_DIGEST_SIZE];
        char *cmdline; /* the effective command line (NULL if none) */
} pcr_uki_info;

void pcr_uki_info_done(pcr_uki_info *info);

/* Predicts PCRs 4, 8, 9, 11, 12, 13, 15 for booting `uki`. On -EBADMSG (malformed input) and
 * -EINVAL (bad options) *ret_reason (may be NULL) names what was wrong ("UKI: section raw data
 * beyond the end of the file", ".linux: no MZ signature", "no .linux section", ...), a static
 * string. ret_info may be NULL. */
int pcr_predict_uki(const uint8_t *uki, size_t len, const pcr_uki_options *opts, pcr_log **ret,
                    pcr_uki_info *ret_info, const char **ret_reason);

/* The PCRs a prediction covers (Constellation's measured-boot set). */
extern const unsigned pcr_predicted_set[7];

/* {"measurements":{"11":{"expected":hex,"warnOnly":false},...},
 *  "eventlog":[{"pcr":4,"type":…,"digest":hex,"description":…,"data":hex},…]}
 * for the PCRs in pcr_predicted_set. */
json_t *pcr_log_to_json(const pcr_log *log);
