/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdio.h>

#include "basic/cleanup-openssl.h"
#include "basic/secret.h"
#include "tpm/eventlog.h"

/* Per event: where its digests are (offsets into the copied log) for each algorithm of the log. */
struct ev {
        uint32_t pcr, type;
        size_t offset;
        size_t data_off, data_len;
        size_t digest_off[EVENTLOG_MAX_ALGS]; /* SIZE_MAX: no digest for algs[k] */
};

struct eventlog {
        uint8_t *buf;
        size_t len;
        bool agile;
        size_t n_algs;
        uint16_t algs[EVENTLOG_MAX_ALGS];
        uint16_t sizes[EVENTLOG_MAX_ALGS];
        bool has_locality;
        uint8_t startup_locality;
        struct ev *events;
        size_t n_events, allocated;
};

static const char spec_id_sig[16] = "Spec ID Event03";
static const char locality_sig[16] = "StartupLocality";

static const EVP_MD *md_for(uint16_t alg) {
        switch (alg) {
        case TPM_ALG_SHA1: return EVP_sha1();
        case TPM_ALG_SHA256: return EVP_sha256();
        case TPM_ALG_SHA384: return EVP_sha384();
        case TPM_ALG_SHA512: return EVP_sha512();
        default: return NULL;
        }
}

/* Little-endian reader; advances only on success. */
struct rd {
        const uint8_t *p;
        size_t len, off;
};

static bool rd_skip(struct rd *r, size_t n) {
        if (!bounds_ok(r->len, r->off, n))
                return false;
        r->off += n;
        return true;
}

static bool rd_u8(struct rd *r, uint8_t *v) {
        if (!bounds_ok(r->len, r->off, 1))
                return false;
        *v = r->p[r->off++];
        return true;
}

static bool rd_u16(struct rd *r, uint16_t *v) {
        if (!bounds_ok(r->len, r->off, 2))
                return false;
        *v = (uint16_t) (r->p[r->off] | r->p[r->off + 1] << 8);
        r->off += 2;
        return true;
}

static bool rd_u32(struct rd *r, uint32_t *v) {
        if (!bounds_ok(r->len, r->off, 4))
                return false;
        const uint8_t *b = r->p + r->off;
        *v = (uint32_t) b[0] | (uint32_t) b[1] << 8 | (uint32_t) b[2] << 16 | (uint32_t) b[3] << 24;
        r->off += 4;
        return true;
}

_printf_(2, 3) static int fail(char **ret_error, const char *fmt, ...) {
        if (ret_error) {
                va_list ap;
                va_start(ap, fmt);
                if (vasprintf(ret_error, fmt, ap) < 0)
                        *ret_error = NULL;
                va_end(ap);
        }
        return -EBADMSG;
}

eventlog *eventlog_free(eventlog *log) {
        if (!log)
                return NULL;
        free(log->buf);
        free(log->events);
        free(log);
        return NULL;
}

static int push_event(eventlog *log, const struct ev *e) {
        if (log->n_events >= EVENTLOG_MAX_EVENTS)
                return -E2BIG;
        if (log->n_events == log->allocated) {
                size_t n = log->allocated ? log->allocated * 2 : 64;
                if (n > EVENTLOG_MAX_EVENTS)
                        n = EVENTLOG_MAX_EVENTS;
                struct ev *p = reallocarray(log->events, n, sizeof *p);
                if (!p)
                        return -ENOMEM;
                log->events = p;
                log->allocated = n;
        }
        log->events[log->n_events++] = *e;
        return 0;
}

/* Where the trailing padding starts: the smallest s such that buf[s..len) is all 0x00 or all 0xFF
 * (len if the last byte is neither). Computed once, from the end, so that "is the rest of the log
 * padding?" is one comparison per event: asking it by scanning the rest at every event made the
 * parser quadratic (a 700 KiB log of zeros ending in 0x01 took minutes of CPU). */
static size_t padding_start(const uint8_t *buf, size_t len) {
        if (len == 0 || (buf[len - 1] != 0x00 && buf[len - 1] != 0xff))
                return len;
        size_t s = len - 1;
        while (s > 0 && buf[s - 1] == buf[len - 1])
                s--;
        return s;
}

/* TCG_EfiSpecIDEvent (PFP §10.4.5.1), the data of the first (legacy-format) event. */
static int parse_spec_id(eventlog *log, const uint8_t *d, size_t n, char **ret_error) {
        struct rd r = { d, n, 0 };
        uint32_t n_algs;
        uint8_t vendor_len, minor, major, errata, uintn;
        if (!rd_skip(&r, 16) || !rd_skip(&r, 4) /* platformClass */ || !rd_u8(&r, &minor) || !rd_u8(&r, &major) ||
            !rd_u8(&r, &errata) || !rd_u8(&r, &uintn) || !rd_u32(&r, &n_algs))
                return fail(ret_error, "Spec ID event truncated");
        if (n_algs == 0 || n_algs > EVENTLOG_MAX_ALGS)
                return fail(ret_error, "Spec ID event lists %u algorithms (1..%u allowed)", n_algs, EVENTLOG_MAX_ALGS);
        for (uint32_t i = 0; i < n_algs; i++) {
                uint16_t alg, size;
                if (!rd_u16(&r, &alg) || !rd_u16(&r, &size))
                        return fail(ret_error, "Spec ID event truncated in the algorithm list");
                if (size == 0 || size > TPMQ_MAX_DIGEST)
                        return fail(ret_error, "Spec ID event: algorithm 0x%04x has digest size %u", alg, size);
                /* A known algorithm must have its real size, or the replay would read garbage. */
                if (tpmq_digest_size(alg) && tpmq_digest_size(alg) != size)
                        return fail(ret_error, "Spec ID event: %s digest size %u", tpmq_alg_name(alg), size);
                for (size_t k = 0; k < log->n_algs; k++)
                        if (log->algs[k] == alg)
                                return fail(ret_error, "Spec ID event lists algorithm 0x%04x twice", alg);
                log->algs[log->n_algs] = alg;
                log->sizes[log->n_algs++] = size;
        }
        if (!rd_u8(&r, &vendor_len) || !rd_skip(&r, vendor_len))
                return fail(ret_error, "Spec ID event truncated in vendorInfo");
        return 0;
}

int eventlog_parse(const uint8_t *buf, size_t len, eventlog **ret, char **ret_error) {
        _cleanup_(eventlog_freep) eventlog *log = NULL;
        int r;

        if (ret_error)
                *ret_error = NULL;
        if (len > EVENTLOG_MAX_SIZE)
                return -EFBIG;
        log = calloc(1, sizeof *log);
        if (!log)
                return -ENOMEM;
        log->buf = malloc(len ? len : 1);
        if (!log->buf)
                return -ENOMEM;
        if (len)
                memcpy(log->buf, buf, len);
        log->len = len;

        struct rd rd = { log->buf, len, 0 };
        /* First event: always TCG_PCClientPCREvent (PFP §10.2.1): pcrIndex, eventType, SHA-1 digest,
         * eventDataSize, event. */
        bool first = true;
        const size_t pad = padding_start(log->buf, len);
        while (rd.off < len) {
                struct ev e = { .offset = rd.off };
                for (size_t k = 0; k < EVENTLOG_MAX_ALGS; k++)
                        e.digest_off[k] = SIZE_MAX;
                size_t idx = log->n_events;
                if (rd.off >= pad && !first)
                        break; /* only padding left */
                if (!rd_u32(&rd, &e.pcr) || !rd_u32(&rd, &e.type))
                        return fail(ret_error, "event %zu at offset %zu: truncated header", idx, e.offset);
                if (first || !log->agile) {
                        size_t dig = rd.off;
                        uint32_t n;
                        if (!rd_skip(&rd, 20) || !rd_u32(&rd, &n) || !bounds_ok(len, rd.off, n))
                                return fail(ret_error, "event %zu at offset %zu: truncated", idx, e.offset);
                        e.data_off = rd.off;
                        e.data_len = n;
                        rd.off += n;
                        if (first && e.type == EV_NO_ACTION && e.pcr == 0 && n >= 16 &&
                            memcmp(log->buf + e.data_off, spec_id_sig, 16) == 0) {
                                r = parse_spec_id(log, log->buf + e.data_off, n, ret_error);
                                if (r < 0)
                                        return r;
                                log->agile = true;
                                first = false;
                                continue; /* the header is not an event of the log */
                        }
                        if (first) {
                                log->n_algs = 1;
                                log->algs[0] = TPM_ALG_SHA1;
                                log->sizes[0] = 20;
                                first = false;
                        }
                        e.digest_off[0] = dig;
                } else {
                        /* TCG_PCR_EVENT2 (PFP §10.2.2): TPML_DIGEST_VALUES then eventSize, event. */
                        uint32_t count, n;
                        if (!rd_u32(&rd, &count))
                                return fail(ret_error, "event %zu at offset %zu: truncated digest count", idx, e.offset);
                        if (count > log->n_algs)
                                return fail(ret_error, "event %zu at offset %zu: %u digests, the log has %zu algorithms",
                                            idx, e.offset, count, log->n_algs);
                        for (uint32_t i = 0; i < count; i++) {
                                uint16_t alg;
                                size_t k;
                                if (!rd_u16(&rd, &alg))
                                        return fail(ret_error, "event %zu at offset %zu: truncated digest", idx, e.offset);
                                for (k = 0; k < log->n_algs && log->algs[k] != alg; k++)
                                        ;
                                if (k == log->n_algs)
                                        return fail(ret_error, "event %zu at offset %zu: digest of algorithm 0x%04x not in the Spec ID event",
                                                    idx, e.offset, alg);
                                if (e.digest_off[k] != SIZE_MAX)
                                        return fail(ret_error, "event %zu at offset %zu: two %s digests", idx, e.offset,
                                                    tpmq_alg_name(alg));
                                e.digest_off[k] = rd.off;
                                if (!rd_skip(&rd, log->sizes[k]))
                                        return fail(ret_error, "event %zu at offset %zu: truncated %s digest", idx,
                                                    e.offset, tpmq_alg_name(alg));
                        }
                        if (!rd_u32(&rd, &n) || !bounds_ok(len, rd.off, n))
                                return fail(ret_error, "event %zu at offset %zu: truncated event data", idx, e.offset);
                        e.data_off = rd.off;
                        e.data_len = n;
                        rd.off += n;
                }
                if (e.pcr >= TPMQ_NUM_PCRS)
                        return fail(ret_error, "event %zu at offset %zu: PCR index %u out of range", idx, e.offset, e.pcr);
                /* StartupLocality (PFP §10.4.5.3): sets PCR 0's initial value in every bank. */
                if (e.type == EV_NO_ACTION && e.data_len == 17 &&
                    memcmp(log->buf + e.data_off, locality_sig, 16) == 0) {
                        log->has_locality = true;
                        log->startup_locality = log->buf[e.data_off + 16];
                }
                r = push_event(log, &e);
                if (r == -E2BIG) {
                        (void) fail(ret_error, "event %zu at offset %zu: more than %u events", idx, e.offset,
                                    EVENTLOG_MAX_EVENTS);
                        return r;
                }
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(log);
        return 0;
}

size_t eventlog_n_events(const eventlog *log) {
        return log->n_events;
}

bool eventlog_is_crypto_agile(const eventlog *log) {
        return log->agile;
}

size_t eventlog_algs(const eventlog *log, uint16_t ret_algs[EVENTLOG_MAX_ALGS]) {
        memcpy(ret_algs, log->algs, log->n_algs * sizeof(uint16_t));
        return log->n_algs;
}

int eventlog_get_event(const eventlog *log, size_t i, eventlog_event *ret) {
        if (i >= log->n_events)
                return -ERANGE;
        const struct ev *e = &log->events[i];
        *ret = (eventlog_event){ .pcr = e->pcr, .type = e->type, .data = log->buf + e->data_off,
                                 .data_len = e->data_len, .offset = e->offset };
        return 0;
}

static int alg_index(const eventlog *log, uint16_t alg) {
        for (size_t k = 0; k < log->n_algs; k++)
                if (log->algs[k] == alg)
                        return (int) k;
        return -1;
}

int eventlog_get_digest(const eventlog *log, size_t i, uint16_t alg, const uint8_t **ret, size_t *ret_len) {
        if (i >= log->n_events)
                return -ERANGE;
        int k = alg_index(log, alg);
        if (k < 0 || log->events[i].digest_off[k] == SIZE_MAX)
                return -ENOENT;
        *ret = log->buf + log->events[i].digest_off[k];
        *ret_len = log->sizes[k];
        return 0;
}

int eventlog_replay(const eventlog *log, uint16_t alg, tpmq_pcr_bank *ret, uint32_t *ret_with_events) {
        tpmq_pcr_bank bank = { .alg = alg };
        uint32_t with_events = 0;
        const EVP_MD *md = md_for(alg);
        size_t dlen = tpmq_digest_size(alg);
        int k = alg_index(log, alg);

        if (!md || (k < 0 && log->n_events > 0))
                return -EOPNOTSUPP;
        for (size_t i = 0; i < TPMQ_NUM_PCRS; i++)
                bank.present[i] = true;
        if (log->has_locality)
                bank.value[0][dlen - 1] = log->startup_locality;

        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (!ctx)
                return -ENOMEM;
        for (size_t i = 0; i < log->n_events; i++) {
                const struct ev *e = &log->events[i];
                if (e->type == EV_NO_ACTION)
                        continue; /* PFP §10.4.5: not extended */
                if (e->digest_off[k] == SIZE_MAX)
                        return -EOPNOTSUPP;
                /* PCR_new = H(PCR_old || digest) (Part 1 §17.2). */
                unsigned int dl = 0;
                if (EVP_DigestInit_ex(ctx, md, NULL) != 1 || EVP_DigestUpdate(ctx, bank.value[e->pcr], dlen) != 1 ||
                    EVP_DigestUpdate(ctx, log->buf + e->digest_off[k], dlen) != 1 ||
                    EVP_DigestFinal_ex(ctx, bank.value[e->pcr], &dl) != 1)
                        return -ENOMEM;
                with_events |= 1u << e->pcr;
        }
        *ret = bank;
        if (ret_with_events)
                *ret_with_events = with_events;
        return 0;
}

const char *eventlog_pcr_verdict_to_string(eventlog_pcr_verdict v) {
        switch (v) {
        case EVENTLOG_PCR_MATCH: return "match";
        case EVENTLOG_PCR_MISMATCH: return "event log replay does not give the quoted value";
        case EVENTLOG_PCR_NOT_IN_LOG: return "no events in the log for this PCR";
        case EVENTLOG_PCR_NOT_QUOTED: return "not quoted";
        default: return "unknown";
        }
}

int eventlog_compare(const eventlog *log, const tpmq_pcr_bank *quoted, eventlog_pcr_verdict ret_verdicts[TPMQ_NUM_PCRS],
                     uint32_t *ret_mismatch) {
        tpmq_pcr_bank replay;
        uint32_t with_events, mismatch = 0;
        eventlog_pcr_verdict v[TPMQ_NUM_PCRS];
        size_t dlen = tpmq_digest_size(quoted->alg);
        int r = eventlog_replay(log, quoted->alg, &replay, &with_events);
        if (r < 0)
                return r;
        for (unsigned i = 0; i < TPMQ_NUM_PCRS; i++) {
                if (!quoted->present[i])
                        v[i] = EVENTLOG_PCR_NOT_QUOTED;
                else if (ct_memeq(replay.value[i], dlen, quoted->value[i], dlen))
                        v[i] = EVENTLOG_PCR_MATCH;
                else if (with_events & (1u << i)) {
                        v[i] = EVENTLOG_PCR_MISMATCH;
                        mismatch |= 1u << i;
                } else
                        v[i] = EVENTLOG_PCR_NOT_IN_LOG;
        }
        if (ret_verdicts)
                memcpy(ret_verdicts, v, sizeof v);
        if (ret_mismatch)
                *ret_mismatch = mismatch;
        return mismatch ? -EBADMSG : 0;
}
