/* SPDX-License-Identifier: Apache-2.0 */
/* TCG PC Client event log from outside: parse, walk every event and digest, replay every bank and
 * compare with a fixed quoted bank. */
#include <stdlib.h>

#include "tpm/eventlog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        eventlog *log = NULL;
        char *err = NULL;
        if (eventlog_parse(data, size, &log, &err) < 0) {
                free(err);
                return 0;
        }
        uint16_t algs[EVENTLOG_MAX_ALGS];
        size_t n_algs = eventlog_algs(log, algs);
        for (size_t i = 0; i < eventlog_n_events(log); i++) {
                eventlog_event e;
                if (eventlog_get_event(log, i, &e) < 0 || e.pcr >= TPMQ_NUM_PCRS || e.data + e.data_len < e.data)
                        abort();
                for (size_t k = 0; k < n_algs; k++) {
                        const uint8_t *d;
                        size_t dl;
                        (void) eventlog_get_digest(log, i, algs[k], &d, &dl);
                }
        }
        for (size_t k = 0; k < n_algs; k++) {
                tpmq_pcr_bank b, quoted = { .alg = algs[k] };
                if (eventlog_replay(log, algs[k], &b, NULL) == 0) {
                        for (unsigned i = 0; i < TPMQ_NUM_PCRS; i++)
                                quoted.present[i] = true;
                        eventlog_pcr_verdict v[TPMQ_NUM_PCRS];
                        (void) eventlog_compare(log, &quoted, v, NULL);
                }
        }
        eventlog_free(log);
        return 0;
}
