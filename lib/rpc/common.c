/* SPDX-License-Identifier: Apache-2.0 */
#include <grpc/byte_buffer_reader.h>
#include <grpc/support/alloc.h>
#include <grpc/support/string_util.h>
#include <openssl/crypto.h>

#include "basic/log.h"
#include "basic/secret.h"
#include "rpc/rpc-internal.h"

/* OpenSSL frees each thread's state (its error queue, its DRBGs) when the thread exits, through
 * a thread-local key's destructor. By default its first initialisation also registers
 * OPENSSL_cleanup() with atexit(), which deletes that key and frees OpenSSL's globals. gRPC core
 * runs TLS handshakes on its own threads (executor, event engine) and does not always have them
 * gone when the last grpc_shutdown() returns: event-engine pool threads are detached (gRPC waits
 * for them to stop working, not to exit), and a last reference dropped on a gRPC thread shuts
 * down, executor included, on a detached thread. Such a thread that exits after OPENSSL_cleanup()
 * keeps its state (LeakSanitizer, at load: "Direct leak of 944 byte(s) in 2 object(s)" from
 * CRYPTO_zalloc, the thread's ERR_STATE and public DRBG) or uses freed globals. So every program
 * with lib/rpc tells OpenSSL before main(), before anything initialises it, not to clean up at
 * exit: every thread then frees its own state whenever it exits, and the kernel reclaims the
 * rest. */
__attribute__((constructor)) static void rpc_openssl_no_cleanup_at_exit(void) {
        (void) OPENSSL_init_crypto(OPENSSL_INIT_NO_ATEXIT, NULL);
}

void rpc_library_ref(void) {
        grpc_init();
}

void rpc_library_unref(void) {
        grpc_shutdown();
}

static void wipe_slice_buffer(grpc_slice_buffer *sb) {
        for (size_t i = 0; i < sb->count; i++)
                erase_memory(GRPC_SLICE_START_PTR(sb->slices[i]), GRPC_SLICE_LENGTH(sb->slices[i]));
}

/* Received messages may carry secrets: once copied out (or not wanted), gRPC's copy is wiped in
 * place before the buffer goes back to gRPC. Its slices are the message bytes only (the transport
 * hands each message over in slices of its own), so nothing else is read from them afterwards. */
void rpc_byte_buffer_destroy_wiped(grpc_byte_buffer *bb) {
        if (!bb)
                return;
        if (bb->type == GRPC_BB_RAW)
                wipe_slice_buffer(&bb->data.raw.slice_buffer);
        grpc_byte_buffer_destroy(bb);
}

int rpc_byte_buffer_to_bytes(grpc_byte_buffer *bb, uint8_t **ret, size_t *ret_len) {
        grpc_byte_buffer_reader reader;
        if (!bb || !grpc_byte_buffer_reader_init(&reader, bb))
                return -EBADMSG;
        /* The reader's output is the decompressed message (the input itself if uncompressed);
         * copy it in one allocation, without grpc_byte_buffer_reader_readall's extra copy. */
        grpc_slice_buffer *plain = &reader.buffer_out->data.raw.slice_buffer;
        size_t len = plain->length;
        uint8_t *out = len < SIZE_MAX ? malloc(len + 1) : NULL;
        if (out) {
                size_t off = 0;
                for (size_t i = 0; i < plain->count; i++) {
                        size_t n = GRPC_SLICE_LENGTH(plain->slices[i]);
                        if (n > 0)
                                memcpy(out + off, GRPC_SLICE_START_PTR(plain->slices[i]), n);
                        off += n;
                }
                out[len] = 0;
        }
        wipe_slice_buffer(plain);
        if (reader.buffer_out != reader.buffer_in && bb->type == GRPC_BB_RAW)
                wipe_slice_buffer(&bb->data.raw.slice_buffer);
        grpc_byte_buffer_reader_destroy(&reader);
        if (!out)
                return -ENOMEM;
        *ret = out;
        *ret_len = len;
        return 0;
}

/* Destroy callback of the slices we hand to gRPC: wiped when gRPC lets go of them. */
static void wiped_slice_free(void *p, size_t len) {
        erase_and_free_sized(p, len);
}

grpc_byte_buffer *rpc_bytes_to_byte_buffer(const void *data, size_t len) {
        grpc_slice slice;
        if (len == 0)
                slice = grpc_empty_slice();
        else {
                uint8_t *copy = malloc(len);
                if (!copy)
                        return NULL;
                memcpy(copy, data, len);
                slice = grpc_slice_new_with_len(copy, len, wiped_slice_free);
        }
        grpc_byte_buffer *bb = grpc_raw_byte_buffer_create(&slice, 1);
        grpc_slice_unref(slice);
        return bb;
}

size_t rpc_message_size_args(int max_receive, int max_send, grpc_arg storage[static 2]) {
        storage[0] = (grpc_arg){
                .type = GRPC_ARG_INTEGER,
                .key = (char *) GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
                .value.integer = max_receive != 0 ? max_receive : RPC_DEFAULT_MAX_MESSAGE_LENGTH,
        };
        storage[1] = (grpc_arg){
                .type = GRPC_ARG_INTEGER,
                .key = (char *) GRPC_ARG_MAX_SEND_MESSAGE_LENGTH,
                .value.integer = max_send != 0 ? max_send : RPC_DEFAULT_MAX_MESSAGE_LENGTH,
        };
        return 2;
}

void rpc_status_done(rpc_status *status) {
        if (!status)
                return;
        status->message = mfree(status->message);
}

const char *rpc_status_code_to_string(grpc_status_code code) {
        static const char *const names[] = {
                "OK",        "CANCELLED",           "UNKNOWN",        "INVALID_ARGUMENT",
                "DEADLINE_EXCEEDED", "NOT_FOUND",   "ALREADY_EXISTS", "PERMISSION_DENIED",
                "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE",
                "UNIMPLEMENTED", "INTERNAL",        "UNAVAILABLE",    "DATA_LOSS",
                "UNAUTHENTICATED",
        };
        if ((unsigned) code < ELEMENTSOF(names))
                return names[code];
        return "UNKNOWN_STATUS";
}

/* --- custom peer verification through gRPC's external verifier (grpc_security.h) --- */

struct verifier_state {
        grpc_tls_certificate_verifier_external external;
        rpc_peer_verify_fn fn;
        void *userdata;
};

static int verifier_verify(void *user_data, grpc_tls_custom_verification_check_request *request,
                           grpc_tls_on_custom_verification_check_done_cb callback, void *callback_arg,
                           grpc_status_code *sync_status, char **sync_error_details) {
        struct verifier_state *st = user_data;
        _cleanup_free_ char *reason = NULL;
        const char *pem = request->peer_info.peer_cert;

        int r = pem ? st->fn(pem, st->userdata, &reason) : -ENOKEY;
        if (r >= 0) {
                *sync_status = GRPC_STATUS_OK;
                return 1; /* verified synchronously */
        }
        const char *why = reason ? reason : (pem ? strerror(-r) : "peer presented no certificate");
        log_debug("rpc: peer certificate refused: %s", why);
        *sync_status = GRPC_STATUS_UNAUTHENTICATED;
        *sync_error_details = gpr_strdup(why);
        return 1;
}

static void verifier_cancel(void *user_data, grpc_tls_custom_verification_check_request *request) {
}

static void verifier_destruct(void *user_data) {
        free(user_data);
}

static grpc_tls_certificate_verifier *verifier_new(const rpc_tls_config *tls) {
        struct verifier_state *st = calloc(1, sizeof(*st));
        if (!st)
                return NULL;
        st->fn = tls->verify;
        st->userdata = tls->verify_userdata;
        st->external = (grpc_tls_certificate_verifier_external){
                .user_data = st,
                .verify = verifier_verify,
                .cancel = verifier_cancel,
                .destruct = verifier_destruct,
        };
        return grpc_tls_certificate_verifier_external_create(&st->external);
}

static grpc_tls_credentials_options *tls_options_new(const rpc_tls_config *tls) {
        grpc_tls_credentials_options *options = grpc_tls_credentials_options_create();
        grpc_tls_identity_pairs *pairs = NULL;
        if (tls->key_pem && tls->cert_pem) {
                pairs = grpc_tls_identity_pairs_create();
                grpc_tls_identity_pairs_add_pair(pairs, tls->key_pem, tls->cert_pem);
        }
        grpc_tls_certificate_provider *provider =
                grpc_tls_certificate_provider_static_data_create(tls->root_pem, pairs);
        grpc_tls_credentials_options_set_certificate_provider(options, provider);
        grpc_tls_certificate_provider_release(provider);
        if (tls->root_pem)
                grpc_tls_credentials_options_watch_root_certs(options);
        if (pairs)
                grpc_tls_credentials_options_watch_identity_key_cert_pairs(options);
        if (tls->verify) {
                /* The options take their own reference; with a hook, the hook replaces gRPC's
                 * default hostname check on the client side. */
                grpc_tls_certificate_verifier *verifier = verifier_new(tls);
                if (verifier) {
                        grpc_tls_credentials_options_set_certificate_verifier(options, verifier);
                        grpc_tls_certificate_verifier_release(verifier);
                }
        }
        return options;
}

grpc_server_credentials *rpc_server_credentials_new(const rpc_tls_config *tls) {
        if (!tls)
                return grpc_insecure_server_credentials_create();
        if (!tls->key_pem || !tls->cert_pem)
                return NULL;
        grpc_tls_credentials_options *options = tls_options_new(tls);
        grpc_ssl_client_certificate_request_type type = GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
        if (tls->require_peer_cert)
                type = tls->root_pem ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
                                     : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_BUT_DONT_VERIFY;
        grpc_tls_credentials_options_set_cert_request_type(options, type);
        return grpc_tls_server_credentials_create(options);
}

grpc_channel_credentials *rpc_channel_credentials_new(const rpc_tls_config *tls) {
        if (!tls)
                return grpc_insecure_credentials_create();
        /* Without roots, only the custom hook can vouch for the server; with neither, refuse. */
        if (!tls->root_pem && !tls->verify)
                return NULL;
        grpc_tls_credentials_options *options = tls_options_new(tls);
        grpc_tls_credentials_options_set_verify_server_cert(options, tls->root_pem ? 1 : 0);
        return grpc_tls_credentials_create(options);
}
