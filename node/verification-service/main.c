/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-verification-service: the node's attestation for anyone who asks with a nonce
 * (reference constellation.md §2.5): gRPC /verify.API/GetAttestation (:30081) and HTTP
 * GET /?nonce= (:30080), user data "VerifyService", qemu-vtpm document from --tpm. */
#include <stdlib.h>

#include "basic/log.h"
#include "service/service.h"
#include "tpm/tpm.h"
#include "verification.h"

static const char *arg_http = "0.0.0.0:30080", *arg_event_log = TPM_EVENT_LOG_PATH;

static const service_option options[] = {
        { "http", "HOST:PORT", "HTTP endpoint GET /?nonce= (default 0.0.0.0:30080)", &arg_http, NULL, false },
        { "event-log", "FILE", "TCG event log for the documents (default the kernel's; missing = empty)",
          &arg_event_log, NULL, false },
};

static const service_info info = {
        .name = "constellation-verification-service",
        .summary = "Serves the node's attestation document for a verifier's nonce (gRPC and HTTP).",
        .default_listen = "0.0.0.0:30081",
        .options = options,
        .n_options = ELEMENTSOF(options),
        .tpm = true,
        .max_message = VERIFICATION_MAX_REQUEST,
};

static void get_attestation(rpc_call *call, const uint8_t *req, size_t len, void *userdata) {
        ct_error err = CT_ERROR_INIT;
        _cleanup_free_ uint8_t *nonce = NULL, *resp = NULL;
        _cleanup_free_ char *doc = NULL;
        size_t nonce_len = 0, doc_len = 0, resp_len = 0;
        if (verification_grpc_nonce(req, len, &nonce, &nonce_len, &err) < 0 ||
            verification_issue(userdata, nonce, nonce_len, &doc, &doc_len, &err) < 0) {
                (void) service_call_fail(call, &err);
                return;
        }
        if (verification_grpc_response(doc, doc_len, &resp, &resp_len) < 0) {
                (void) rpc_call_fail(call, GRPC_STATUS_RESOURCE_EXHAUSTED, "verify: out-of-memory");
                return;
        }
        (void) rpc_call_reply(call, resp, resp_len);
}

int main(int argc, char **argv) {
        _cleanup_(verification_freep) verification *v = NULL; /* freed after both servers */
        _cleanup_(service_freep) service *s = NULL;
        int r = service_new(&info, argc, argv, &s);
        if (r < 0)
                return service_exit_code(r);
        if (verification_new(service_tpm(s), arg_event_log, &v) < 0 ||
            service_register(s, VERIFICATION_METHOD, get_attestation, v) < 0 || service_start(s) < 0)
                return SERVICE_EXIT_FAILURE;

        _cleanup_(verification_http_stopp) verification_http *http = NULL;
        ct_error err = CT_ERROR_INIT;
        char msg[CT_ERROR_DETAIL_MAX + 64];
        int port = 0;
        if (verification_http_start(v, arg_http, &http, &port, &err) < 0) {
                log_error("HTTP endpoint: %s", ct_error_format(&err, msg, sizeof msg));
                return SERVICE_EXIT_FAILURE;
        }
        const char *colon = strrchr(arg_http, ':');
        log_info("serving HTTP GET /?nonce= on %.*s:%d", (int) (colon - arg_http), arg_http, port);
        service_append_status(s, "http=%.*s:%d", (int) (colon - arg_http), arg_http, port);
        return service_exit_code(service_run(s));
}
