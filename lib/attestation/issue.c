/* SPDX-License-Identifier: Apache-2.0 */
/* Issuing Constellation's qemu-vtpm attestation document from a TPM (ct-attestation-issue, on
 * tpm2-tss ESYS). Kept apart from validation (attdoc.c, ct-attestation) so that verifiers -- the
 * provider, constellation-attest, aTLS clients -- never link tpm2-tss. */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>

#include "attestation/issue.h"
#include "basic/cleanup-openssl.h"
#include "basic/encoding.h"
#include "tpm/eventlog.h"
#include "tpm/tpm.h"

static int set_b64(json_t *obj, const char *key, const uint8_t *data, size_t len) {
        _cleanup_free_ char *s = base64_encode(data, len, BASE64_STD);
        if (!s || json_object_set_new(obj, key, json_string(s)) < 0)
                return -ENOMEM;
        return 0;
}

/* Quote{quote, raw_sig, pcrs{hash, pcrs{"i": b64}}}: Go sorts map keys as strings ("0","1","10",..). */
static json_t *quote_json(const tpm_quote_result *q) {
        _cleanup_(json_decrefp) json_t *o = json_object(), *pcrs = json_object(), *map = json_object();
        if (!o || !pcrs || !map)
                return NULL;
        if (set_b64(o, "quote", q->attest, q->attest_len) < 0 || set_b64(o, "raw_sig", q->sig, q->sig_len) < 0)
                return NULL;
        char keys[TPMQ_NUM_PCRS][4];
        const char *order[TPMQ_NUM_PCRS];
        for (unsigned i = 0; i < TPMQ_NUM_PCRS; i++) {
                snprintf(keys[i], sizeof keys[i], "%u", i);
                order[i] = keys[i];
        }
        for (unsigned i = 1; i < TPMQ_NUM_PCRS; i++) /* insertion sort by string */
                for (unsigned k = i; k > 0 && strcmp(order[k - 1], order[k]) > 0; k--) {
                        const char *t = order[k];
                        order[k] = order[k - 1];
                        order[k - 1] = t;
                }
        size_t dlen = tpmq_digest_size(q->pcrs.alg);
        for (unsigned i = 0; i < TPMQ_NUM_PCRS; i++) {
                unsigned idx = (unsigned) atoi(order[i]);
                if (q->pcrs.present[idx] && set_b64(map, order[i], q->pcrs.value[idx], dlen) < 0)
                        return NULL;
        }
        if (json_object_set_new(pcrs, "hash", json_integer(q->pcrs.alg)) < 0 ||
            json_object_set_new(pcrs, "pcrs", TAKE_PTR(map)) < 0 || json_object_set_new(o, "pcrs", TAKE_PTR(pcrs)) < 0)
                return NULL;
        return TAKE_PTR(o);
}

_printf_(2, 3) static void set_error(char **ret, const char *fmt, ...) {
        if (!ret)
                return;
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(ret, fmt, ap) < 0)
                *ret = NULL;
        va_end(ap);
}

int attdoc_issue_qemu_vtpm_tpm(tpm_ctx *t, const char *event_log_path, const uint8_t *user_data, size_t ud_len,
                               const uint8_t *nonce, size_t nonce_len, char **ret_json, size_t *ret_len,
                               char **ret_error) {
        uint8_t extra[32], tpm_nonce[32];
        uint16_t banks[TPM_MAX_BANKS];
        size_t n_banks = 0;
        int r;

        if (ret_error)
                *ret_error = NULL;
        if (ud_len > ATTDOC_MAX_USER_DATA || nonce_len > ATTDOC_MAX_NONCE)
                return -EINVAL;
        if (attdoc_make_extra_data(user_data, ud_len, nonce, nonce_len, extra) < 0 ||
            attdoc_make_tpm_nonce(NULL, 0, extra, tpm_nonce) < 0) /* qemu-vtpm: no instanceInfo */
                return -ENOMEM;

        _cleanup_free_ uint8_t *ak = NULL, *log = NULL;
        size_t ak_len, log_len;
        r = tpm_ak_public(t, &ak, &ak_len);
        if (r >= 0)
                r = tpm_get_banks(t, banks, &n_banks);
        if (r < 0) {
                set_error(ret_error, "%s", tpm_last_error(t));
                return r;
        }
        r = tpm_read_event_log(event_log_path, &log, &log_len);
        if (r < 0) {
                set_error(ret_error, "event log %s: %s", event_log_path ?: TPM_EVENT_LOG_PATH, strerror(-r));
                return r;
        }

        _cleanup_(json_decrefp) json_t *doc = json_object(), *att = json_object(), *quotes = json_array();
        if (!doc || !att || !quotes || set_b64(att, "ak_pub", ak, ak_len) < 0)
                return -ENOMEM;
        /* go-tpm-tools Key.Attest: one quote over all 24 PCRs of every allocated bank. */
        for (size_t i = 0; i < n_banks; i++) {
                tpm_quote_result q = { 0 };
                r = tpm_quote(t, banks[i], (1u << TPMQ_NUM_PCRS) - 1, tpm_nonce, sizeof tpm_nonce, &q);
                if (r < 0) {
                        set_error(ret_error, "quote of the %s bank: %s", tpmq_alg_name(banks[i]), tpm_last_error(t));
                        return r;
                }
                json_t *qj = quote_json(&q);
                tpm_quote_result_done(&q);
                if (!qj || json_array_append_new(quotes, qj) < 0)
                        return -ENOMEM;
        }
        if (json_object_set_new(att, "quotes", TAKE_PTR(quotes)) < 0)
                return -ENOMEM;
        if (log_len > 0 && set_b64(att, "event_log", log, log_len) < 0)
                return -ENOMEM;
        if (json_object_set_new(doc, "Attestation", TAKE_PTR(att)) < 0 ||
            json_object_set_new(doc, "InstanceInfo", json_null()) < 0)
                return -ENOMEM;
        if (user_data || ud_len) {
                if (set_b64(doc, "UserData", user_data, ud_len) < 0)
                        return -ENOMEM;
        } else if (json_object_set_new(doc, "UserData", json_null()) < 0)
                return -ENOMEM;
        char *s = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (!s)
                return -ENOMEM;
        *ret_json = s;
        if (ret_len)
                *ret_len = strlen(s);
        return 0;
}

int attdoc_issue_qemu_vtpm(const char *tcti_conf, const uint8_t *user_data, size_t ud_len, const uint8_t *nonce,
                           size_t nonce_len, char **ret_json, size_t *ret_len, char **ret_error) {
        _cleanup_(tpm_closep) tpm_ctx *t = NULL;
        int r = tpm_open(tcti_conf, &t, ret_error);
        if (r < 0)
                return r;
        return attdoc_issue_qemu_vtpm_tpm(t, NULL, user_data, ud_len, nonce, nonce_len, ret_json, ret_len, ret_error);
}

