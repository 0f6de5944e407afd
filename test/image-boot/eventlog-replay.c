/* SPDX-License-Identifier: Apache-2.0 */
/* eventlog-replay EVENTLOG: replays a firmware TCG event log (as the guest printed it) with the
 * project's own parser (lib/tpm eventlog_*) and prints "INDEX HEX" for every PCR the log
 * extends in the SHA-256 bank, so test-image-boot can compare it with the PCRs read in the guest.
 * Exit 0 on success; 1 with the parser's reason on stderr otherwise. */
#include <stdio.h>
#include <stdlib.h>

#include "basic/encoding.h"
#include "basic/fileio.h"
#include "basic/macro.h"
#include "tpm/eventlog.h"

#define EVENTLOG_FILE_MAX (16u * 1024u * 1024u)

int main(int argc, char **argv) {
        if (argc != 2) {
                fprintf(stderr, "usage: eventlog-replay EVENTLOG\n");
                return 2;
        }
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0;
        int r = read_full_file(argv[1], EVENTLOG_FILE_MAX, &buf, &len);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", argv[1], strerror(-r));
                return 1;
        }
        _cleanup_(eventlog_freep) eventlog *log = NULL;
        _cleanup_free_ char *error = NULL;
        r = eventlog_parse(buf, len, &log, &error);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", argv[1], error ? error : strerror(-r));
                return 1;
        }
        tpmq_pcr_bank bank;
        uint32_t with_events = 0;
        r = eventlog_replay(log, TPM_ALG_SHA256, &bank, &with_events);
        if (r < 0) {
                fprintf(stderr, "%s: cannot replay the SHA-256 bank: %s\n", argv[1], strerror(-r));
                return 1;
        }
        for (unsigned i = 0; i < TPMQ_NUM_PCRS; i++) {
                if (!(with_events & (UINT32_C(1) << i)))
                        continue;
                _cleanup_free_ char *hex = hex_encode(bank.value[i], tpmq_digest_size(TPM_ALG_SHA256));
                if (!hex) {
                        fprintf(stderr, "out of memory\n");
                        return 1;
                }
                printf("%u %s\n", i, hex);
        }
        return fflush(stdout) == 0 ? 0 : 1;
}
