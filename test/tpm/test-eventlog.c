/* SPDX-License-Identifier: Apache-2.0 */
/* Event log parse + replay on the real GCE vTPM log (44 events, SHA-1/SHA-256/SHA-384), and the
 * rejection paths: tampered digests, truncation, limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "tpm-test-util.h"
#include <openssl/sha.h>

#include "tpm/eventlog.h"

static void test_gce_replay(void **state) {
        (void) state;
        size_t len;
        _cleanup_free_ uint8_t *buf = tpm_test_read("tpm-gce-vtpm/nonce9009.event_log.bin", &len);
        _cleanup_(eventlog_freep) eventlog *log = NULL;
        char *err = NULL;
        assert_int_equal(eventlog_parse(buf, len, &log, &err), 0);
        assert_null(err);
        assert_true(eventlog_is_crypto_agile(log));
        assert_int_equal(eventlog_n_events(log), 44);
        uint16_t algs[EVENTLOG_MAX_ALGS];
        assert_int_equal(eventlog_algs(log, algs), 3);

        const char *banks[] = { "sha1", "sha256", "sha384" };
        for (size_t b = 0; b < ELEMENTSOF(banks); b++) {
                char p[128];
                tpmq_pcr_bank quoted;
                snprintf(p, sizeof p, "tpm-gce-vtpm/nonce9009.pcrs_%s.txt", banks[b]);
                tpm_test_read_bank(p, tpmq_alg_from_name(banks[b]), &quoted);
                eventlog_pcr_verdict v[TPMQ_NUM_PCRS];
                uint32_t mismatch = 0xdead;
                assert_int_equal(eventlog_compare(log, &quoted, v, &mismatch), 0);
                assert_int_equal(mismatch, 0);
                for (unsigned i = 0; i < TPMQ_NUM_PCRS; i++) {
                        /* PCR 10 (IMA) is not in the BIOS log; 17-22 are 0xFF.. (not reset). */
                        eventlog_pcr_verdict want = (i == 10 || (i >= 17 && i <= 22)) ? EVENTLOG_PCR_NOT_IN_LOG :
                                                                                        EVENTLOG_PCR_MATCH;
                        assert_int_equal(v[i], want);
                }
                /* A PCR value the log does not explain. */
                quoted.value[4][0] ^= 1;
                assert_int_equal(eventlog_compare(log, &quoted, v, &mismatch), -EBADMSG);
                assert_int_equal(mismatch, 1u << 4);
                assert_int_equal(v[4], EVENTLOG_PCR_MISMATCH);
                quoted.present[4] = false;
                assert_int_equal(eventlog_compare(log, &quoted, v, &mismatch), 0);
                assert_int_equal(v[4], EVENTLOG_PCR_NOT_QUOTED);
        }
        tpmq_pcr_bank q512 = { .alg = TPM_ALG_SHA512 };
        assert_int_equal(eventlog_compare(log, &q512, NULL, NULL), -EOPNOTSUPP);
}

static void test_tampered_event(void **state) {
        (void) state;
        size_t len;
        _cleanup_free_ uint8_t *buf = tpm_test_read("tpm-gce-vtpm/nonce9009.event_log.bin", &len);
        _cleanup_(eventlog_freep) eventlog *orig = NULL;
        assert_int_equal(eventlog_parse(buf, len, &orig, NULL), 0);
        /* Flip the SHA-256 digest of the first EV_SEPARATOR in PCR 7. */
        size_t n = eventlog_n_events(orig), found = SIZE_MAX;
        for (size_t i = 0; i < n && found == SIZE_MAX; i++) {
                eventlog_event e;
                assert_int_equal(eventlog_get_event(orig, i, &e), 0);
                if (e.pcr == 7 && e.type == EV_SEPARATOR)
                        found = i;
        }
        assert_true(found != SIZE_MAX);
        const uint8_t *d;
        size_t dl;
        assert_int_equal(eventlog_get_digest(orig, found, TPM_ALG_SHA256, &d, &dl), 0);
        assert_int_equal(dl, 32);
        /* The log keeps its own copy: find the same digest bytes in buf. */
        uint8_t *copy = memmem(buf, len, d, dl);
        assert_non_null(copy);
        copy[0] ^= 1;
        _cleanup_(eventlog_freep) eventlog *log = NULL;
        assert_int_equal(eventlog_parse(buf, len, &log, NULL), 0);
        tpmq_pcr_bank quoted;
        tpm_test_read_bank("tpm-gce-vtpm/nonce9009.pcrs_sha256.txt", TPM_ALG_SHA256, &quoted);
        uint32_t mismatch = 0;
        assert_int_equal(eventlog_compare(log, &quoted, NULL, &mismatch), -EBADMSG);
        assert_int_equal(mismatch, 1u << 7);
        /* The SHA-1 bank is untouched. */
        tpm_test_read_bank("tpm-gce-vtpm/nonce9009.pcrs_sha1.txt", TPM_ALG_SHA1, &quoted);
        assert_int_equal(eventlog_compare(log, &quoted, NULL, NULL), 0);
}

static void test_truncated(void **state) {
        (void) state;
        size_t len;
        _cleanup_free_ uint8_t *buf = tpm_test_read("tpm-gce-vtpm/nonce9009.event_log.bin", &len);
        unsigned ok = 0, bad = 0;
        for (size_t n = 1; n < len; n += 7) {
                eventlog *log = NULL;
                char *err = NULL;
                int r = eventlog_parse(buf, n, &log, &err);
                if (r == 0) {
                        /* Only when the cut falls exactly on an event boundary. */
                        ok++;
                        assert_null(err);
                        eventlog_free(log);
                } else {
                        bad++;
                        assert_int_equal(r, -EBADMSG);
                        assert_non_null(err);
                        assert_non_null(strstr(err, "truncated"));
                        free(err);
                }
        }
        assert_true(bad > ok);
        /* Empty log: valid, no events, replay is all zero. */
        _cleanup_(eventlog_freep) eventlog *empty = NULL;
        assert_int_equal(eventlog_parse(buf, 0, &empty, NULL), 0);
        assert_int_equal(eventlog_n_events(empty), 0);
        tpmq_pcr_bank z;
        assert_int_equal(eventlog_replay(empty, TPM_ALG_SHA256, &z, NULL), 0);
        assert_true(z.present[0] && z.value[0][0] == 0 && z.value[0][31] == 0);
        /* Over the size limit. */
        eventlog *big = NULL;
        assert_int_equal(eventlog_parse(buf, EVENTLOG_MAX_SIZE + 1, &big, NULL), -EFBIG);
}

static void test_bad_spec_id(void **state) {
        (void) state;
        size_t len;
        _cleanup_free_ uint8_t *buf = tpm_test_read("tpm-gce-vtpm/nonce9009.event_log.bin", &len);
        /* numberOfAlgorithms sits at offset 32 (header) + 24 in the Spec ID event data. */
        eventlog *log = NULL;
        char *err = NULL;
        uint8_t save = buf[32 + 24];
        buf[32 + 24] = 9;
        assert_int_equal(eventlog_parse(buf, len, &log, &err), -EBADMSG);
        assert_non_null(strstr(err, "9 algorithms"));
        free(err);
        buf[32 + 24] = save;
        /* The SHA-256 digest size (second entry) declared as 20. */
        assert_int_equal(buf[32 + 28 + 4], 0x0b);
        buf[32 + 28 + 6] = 20;
        assert_int_equal(eventlog_parse(buf, len, &log, &err), -EBADMSG);
        assert_non_null(strstr(err, "sha256 digest size 20"));
        free(err);
}

static void test_legacy_sha1_log(void **state) {
        (void) state;
        /* Two SHA-1 format events (PFP §10.2.1) into PCR 0, no Spec ID event. */
        uint8_t log_bytes[2 * (4 + 4 + 20 + 4 + 1)];
        size_t off = 0;
        for (int i = 0; i < 2; i++) {
                memset(log_bytes + off, 0, 8);
                log_bytes[off + 4] = 0x08; /* EV_S_CRTM_VERSION */
                off += 8;
                memset(log_bytes + off, 0x11 * (i + 1), 20);
                off += 20;
                memcpy(log_bytes + off, (const uint8_t[]){ 1, 0, 0, 0, 'x' }, 5);
                off += 5;
        }
        _cleanup_(eventlog_freep) eventlog *log = NULL;
        assert_int_equal(eventlog_parse(log_bytes, off, &log, NULL), 0);
        assert_false(eventlog_is_crypto_agile(log));
        assert_int_equal(eventlog_n_events(log), 2);
        tpmq_pcr_bank b;
        uint32_t with = 0;
        assert_int_equal(eventlog_replay(log, TPM_ALG_SHA1, &b, &with), 0);
        assert_int_equal(with, 1);
        /* Expected: SHA1(SHA1(0^20 || 11^20) || 22^20). */
        uint8_t v[20] = { 0 }, in[40];
        memcpy(in, v, 20);
        memset(in + 20, 0x11, 20);
        SHA1(in, 40, v);
        memcpy(in, v, 20);
        memset(in + 20, 0x22, 20);
        SHA1(in, 40, v);
        assert_memory_equal(b.value[0], v, 20);
        assert_int_equal(eventlog_replay(log, TPM_ALG_SHA256, &b, NULL), -EOPNOTSUPP);
}


/* A crypto-agile Spec ID header (PFP §10.4.5.1, SHA-256 only), 65 bytes. */
static size_t spec_id_header(uint8_t *out) {
        static const uint8_t h[] = {
                0, 0, 0, 0, 3, 0, 0, 0, /* PCR 0, EV_NO_ACTION */
                0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* SHA-1 digest */
                33, 0, 0, 0, 'S', 'p', 'e', 'c', ' ', 'I', 'D', ' ', 'E', 'v', 'e', 'n', 't', '0', '3', 0,
                0, 0, 0, 0, 0, 2, 0, 2, 1, 0, 0, 0, 0x0b, 0, 32, 0, 0,
        };
        memcpy(out, h, sizeof h);
        return sizeof h;
}

/* Logs padded with zeros up to the largest size the CLI (--eventlog, EVENTLOG_MAX_SIZE) and an
 * attestation document (event_log, EVENTLOG_MAX_SIZE) accept. The parser used to ask "is the rest
 * padding?" by scanning the rest at every event: quadratic, minutes of CPU for a 700 KiB log of
 * zeros ending in 0x01. These must parse or be refused, with the reason; the time it takes is
 * measured in bench-tpm, not asserted here. */
static void test_padding_at_the_size_limit(void **state) {
        (void) state;
        const size_t max = EVENTLOG_MAX_SIZE;
        _cleanup_free_ uint8_t *buf = calloc(1, max);
        assert_non_null(buf);
        size_t h = spec_id_header(buf);
        char *err = NULL;
        eventlog *log = NULL;

        /* Header, then only zeros: trailing padding, no events. */
        assert_int_equal(eventlog_parse(buf, max, &log, &err), 0);
        assert_int_equal(eventlog_n_events(log), 0);
        log = eventlog_free(log);

        /* Header, zeros, one 0x01 at the very end: the zeros are events (PCR 0, type 0, no digests,
         * no data: 16 bytes each), more than the 65536 allowed. */
        buf[max - 1] = 0x01;
        assert_int_equal(eventlog_parse(buf, max, &log, &err), -E2BIG);
        assert_non_null(err);
        _cleanup_free_ char *want = NULL;
        assert_true(asprintf(&want, "event 65536 at offset %zu: more than 65536 events", h + 65536 * 16) > 0);
        assert_string_equal(err, want);
        err = mfree(err);

        /* The 700 KiB log of the report (fuzz/tpm/corpus/fuzz-eventlog/regression-quadratic-*):
         * 44795 empty events, then 15 bytes ending in 0x01: a truncated event. */
        const size_t n700 = 700 * 1024;
        memset(buf + h, 0, max - h);
        buf[n700 - 1] = 0x01;
        assert_int_equal(eventlog_parse(buf, n700, &log, &err), -EBADMSG);
        assert_string_equal(err, "event 44795 at offset 716785: truncated event data");
        err = mfree(err);

        /* The real GCE log, then zeros up to the limit: 44 events, padding ignored, replay intact. */
        size_t len;
        _cleanup_free_ uint8_t *gce = tpm_test_read("tpm-gce-vtpm/nonce9009.event_log.bin", &len);
        memset(buf, 0, max);
        memcpy(buf, gce, len);
        assert_int_equal(eventlog_parse(buf, max, &log, &err), 0);
        assert_int_equal(eventlog_n_events(log), 44);
        tpmq_pcr_bank quoted;
        tpm_test_read_bank("tpm-gce-vtpm/nonce9009.pcrs_sha256.txt", TPM_ALG_SHA256, &quoted);
        assert_int_equal(eventlog_compare(log, &quoted, NULL, NULL), 0);
        log = eventlog_free(log);
        /* ... and 0xFF padding, as some firmware leaves it. */
        memset(buf + len, 0xff, max - len);
        assert_int_equal(eventlog_parse(buf, max, &log, &err), 0);
        assert_int_equal(eventlog_n_events(log), 44);
        log = eventlog_free(log);
        /* Mixed padding is not padding: the zeros after the log are parsed as events again. */
        buf[max - 1] = 0x00;
        assert_int_equal(eventlog_parse(buf, max, &log, &err), -EBADMSG);
        assert_non_null(strstr(err, "event 44 at offset"));
        err = mfree(err);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_gce_replay),  cmocka_unit_test(test_tampered_event),
                cmocka_unit_test(test_truncated),   cmocka_unit_test(test_bad_spec_id),
                cmocka_unit_test(test_legacy_sha1_log), cmocka_unit_test(test_padding_at_the_size_limit),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
