/* SPDX-License-Identifier: Apache-2.0 */
/* TCG PC Client event log (TCG PC Client Platform Firmware Profile, "PFP", v1.05 §10): parse and
 * replay against quoted PCRs.
 *
 * Two layouts are read: the SHA-1 legacy log (every event a TCG_PCClientPCREvent, §10.2.1) and the
 * crypto-agile log (first event a TCG_PCClientPCREvent carrying TCG_EfiSpecIDEvent "Spec ID
 * Event03", §10.4.5.1, then TCG_PCR_EVENT2 events, §10.2.2, each with one digest per algorithm the
 * Spec ID event lists). All integers are little-endian. The parser is for untrusted input: it is
 * bounded (size, events, algorithms) and checks every length before it reads. */
#pragma once

#include "basic/macro.h"
#include "tpm/quote.h"

#define EVENTLOG_MAX_SIZE (8u * 1024 * 1024)
#define EVENTLOG_MAX_EVENTS 65536u
#define EVENTLOG_MAX_ALGS 8u

#define EV_NO_ACTION 0x00000003u
#define EV_SEPARATOR 0x00000004u

typedef struct eventlog eventlog;

/* One event as seen through the log (pointers into the log; valid while it lives). */
typedef struct eventlog_event {
        uint32_t pcr;
        uint32_t type;
        const uint8_t *data;
        size_t data_len;
        size_t offset; /* of the event in the log, for messages */
} eventlog_event;

/* Parses a log of at most EVENTLOG_MAX_SIZE bytes (copied). An empty log is valid (swtpm has
 * none). -EBADMSG with a sentence naming the event and offset in *ret_error (malloc'd, optional),
 * -EFBIG/-E2BIG beyond the limits. Trailing zero or 0xFF padding after the last event is ignored. */
int eventlog_parse(const uint8_t *buf, size_t len, eventlog **ret, char **ret_error);
eventlog *eventlog_free(eventlog *log);
DEFINE_TRIVIAL_CLEANUP_FUNC(eventlog *, eventlog_free);

size_t eventlog_n_events(const eventlog *log);
bool eventlog_is_crypto_agile(const eventlog *log);
/* Algorithms the log carries digests for (SHA-1 only for a legacy log). */
size_t eventlog_algs(const eventlog *log, uint16_t ret_algs[EVENTLOG_MAX_ALGS]);
/* Event i (0-based, the Spec ID header event not counted); -ERANGE past the end. */
int eventlog_get_event(const eventlog *log, size_t i, eventlog_event *ret);
/* The digest of event i for bank alg; -ENOENT if the event has none for it. */
int eventlog_get_digest(const eventlog *log, size_t i, uint16_t alg, const uint8_t **ret, size_t *ret_len);

/* Replays the log into a bank of alg: PCRs start at zero (PCR 0 at the StartupLocality value when
 * the log has that EV_NO_ACTION event, PFP §10.4.5.3), every event but EV_NO_ACTION extends its
 * PCR. ret->present[i] is true for every PCR 0-23; *ret_with_events (optional) has bit i set for
 * PCRs that had at least one extending event. -EOPNOTSUPP if the log has no digests for alg. */
int eventlog_replay(const eventlog *log, uint16_t alg, tpmq_pcr_bank *ret, uint32_t *ret_with_events);

typedef enum eventlog_pcr_verdict {
        EVENTLOG_PCR_MATCH = 0,   /* replayed value == quoted value (also: no events and PCR at reset) */
        EVENTLOG_PCR_MISMATCH,    /* the log has events for this PCR and they do not give its value */
        EVENTLOG_PCR_NOT_IN_LOG,  /* no events in the log, PCR not at its reset value (e.g. IMA's PCR 10) */
        EVENTLOG_PCR_NOT_QUOTED,  /* no quoted value given for this PCR */
} eventlog_pcr_verdict;

const char *eventlog_pcr_verdict_to_string(eventlog_pcr_verdict v);

/* Compares the replay of quoted->alg with the quoted values, one verdict per PCR. Returns 0 when
 * no PCR is MISMATCH, -EBADMSG otherwise (the mask of mismatching PCRs in *ret_mismatch, optional),
 * -EOPNOTSUPP if the log has no digests for the bank. The caller must have verified the quote of
 * exactly this bank (tpmq_verify_quote) before trusting `quoted`. */
int eventlog_compare(const eventlog *log, const tpmq_pcr_bank *quoted, eventlog_pcr_verdict ret_verdicts[TPMQ_NUM_PCRS],
                     uint32_t *ret_mismatch);
