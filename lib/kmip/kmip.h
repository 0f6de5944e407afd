/* SPDX-License-Identifier: Apache-2.0 */
/* A KMIP client (OASIS KMIP Specification v1.4; KMIP Profiles v1.4, "Basic Authentication Suite":
 * TLS 1.2+, mutual certificate authentication) over OpenSSL.
 *
 * The client speaks protocol version 1.4 because that is the first version whose Encrypt/Decrypt
 * payloads carry the Authenticated Encryption Additional Data and Tag (KMIP 1.4 §4.29, §4.30),
 * which is what makes AES-GCM (an authenticated wrap) possible inside the server.
 *
 * Transport: one TLS connection, kept open between requests and re-established when it broke.
 * The server certificate must chain to the pinned CA only (no system roots) and name the
 * configured server name (DNS SAN) or IP (IP SAN). Connection failures and timeouts are retried
 * with exponential backoff; a KMIP error result is never retried, and a request that reached the
 * server is retried only if the operation is idempotent (Get Attributes, Encrypt, Decrypt).
 *
 * Errors: a negative errno plus a ct_error with layer "kmip" and a stable reason token:
 *   transport: server-down, server-timeout, server-ca-mismatch, server-name-mismatch,
 *              tls-client-cert-refused, tls-handshake-failed, protocol-error
 *   KMIP Result Reason (§6.10): item-not-found, permission-denied, authentication-failed,
 *              invalid-field, operation-not-supported, cryptographic-failure, illegal-operation,
 *              general-failure, operation-failed (others; the detail names the reason)
 *   key state: kek-revoked (Deactivated/Compromised), kek-destroyed, kek-not-active (Pre-Active)
 *   unwrap:    unwrap-failed (the server refused to authenticate the ciphertext)
 *   config:    bad-config
 * The detail names the operation, the object and the server's Result Message; never secrets. */
#pragma once

#include "basic/error.h"
#include "basic/secret.h"

#define KMIP_DEFAULT_PORT 5696 /* IANA "kmip" */
#define KMIP_DEFAULT_TIMEOUT_MS 5000
#define KMIP_DEFAULT_ATTEMPTS 4
#define KMIP_DEFAULT_BACKOFF_MS 100

/* Tags (§9.1.3.1), only those this client uses. */
enum {
        KMIP_TAG_ATTRIBUTE = 0x420008,
        KMIP_TAG_ATTRIBUTE_NAME = 0x42000A,
        KMIP_TAG_ATTRIBUTE_VALUE = 0x42000B,
        KMIP_TAG_BATCH_COUNT = 0x42000D,
        KMIP_TAG_BATCH_ITEM = 0x42000F,
        KMIP_TAG_BLOCK_CIPHER_MODE = 0x420011,
        KMIP_TAG_CRYPTOGRAPHIC_ALGORITHM = 0x420028,
        KMIP_TAG_CRYPTOGRAPHIC_LENGTH = 0x42002A,
        KMIP_TAG_CRYPTOGRAPHIC_PARAMETERS = 0x42002B,
        KMIP_TAG_CRYPTOGRAPHIC_USAGE_MASK = 0x42002C,
        KMIP_TAG_IV_COUNTER_NONCE = 0x42003D,
        KMIP_TAG_MAXIMUM_RESPONSE_SIZE = 0x420050,
        KMIP_TAG_NAME = 0x420053,
        KMIP_TAG_NAME_TYPE = 0x420054,
        KMIP_TAG_NAME_VALUE = 0x420055,
        KMIP_TAG_OBJECT_TYPE = 0x420057,
        KMIP_TAG_OPERATION = 0x42005C,
        KMIP_TAG_PROTOCOL_VERSION = 0x420069,
        KMIP_TAG_PROTOCOL_VERSION_MAJOR = 0x42006A,
        KMIP_TAG_PROTOCOL_VERSION_MINOR = 0x42006B,
        KMIP_TAG_REQUEST_HEADER = 0x420077,
        KMIP_TAG_REQUEST_MESSAGE = 0x420078,
        KMIP_TAG_REQUEST_PAYLOAD = 0x420079,
        KMIP_TAG_RESPONSE_HEADER = 0x42007A,
        KMIP_TAG_RESPONSE_MESSAGE = 0x42007B,
        KMIP_TAG_RESPONSE_PAYLOAD = 0x42007C,
        KMIP_TAG_RESULT_MESSAGE = 0x42007D,
        KMIP_TAG_RESULT_REASON = 0x42007E,
        KMIP_TAG_RESULT_STATUS = 0x42007F,
        KMIP_TAG_REVOCATION_REASON = 0x420081,
        KMIP_TAG_REVOCATION_REASON_CODE = 0x420082,
        KMIP_TAG_STATE = 0x42008D,
        KMIP_TAG_TEMPLATE_ATTRIBUTE = 0x420091,
        KMIP_TAG_UNIQUE_IDENTIFIER = 0x420094,
        KMIP_TAG_DATA = 0x4200C2,
        KMIP_TAG_TAG_LENGTH = 0x4200CE,
        KMIP_TAG_AE_ADDITIONAL_DATA = 0x4200FE,
        KMIP_TAG_AE_TAG = 0x4200FF,
};

/* Operation (§9.1.3.2) */
enum {
        KMIP_OP_CREATE = 0x01,
        KMIP_OP_GET_ATTRIBUTES = 0x0B,
        KMIP_OP_ACTIVATE = 0x12,
        KMIP_OP_REVOKE = 0x13,
        KMIP_OP_DESTROY = 0x14,
        KMIP_OP_ENCRYPT = 0x1F,
        KMIP_OP_DECRYPT = 0x20,
};

/* Result Status (§9.1.3.2) and Result Reason (§9.1.3.2) */
enum {
        KMIP_STATUS_SUCCESS = 0,
        KMIP_STATUS_OPERATION_FAILED = 1,
};
enum {
        KMIP_REASON_ITEM_NOT_FOUND = 0x01,
        KMIP_REASON_RESPONSE_TOO_LARGE = 0x02,
        KMIP_REASON_AUTHENTICATION_NOT_SUCCESSFUL = 0x03,
        KMIP_REASON_INVALID_MESSAGE = 0x04,
        KMIP_REASON_OPERATION_NOT_SUPPORTED = 0x05,
        KMIP_REASON_MISSING_DATA = 0x06,
        KMIP_REASON_INVALID_FIELD = 0x07,
        KMIP_REASON_FEATURE_NOT_SUPPORTED = 0x08,
        KMIP_REASON_CRYPTOGRAPHIC_FAILURE = 0x0A,
        KMIP_REASON_ILLEGAL_OPERATION = 0x0B,
        KMIP_REASON_PERMISSION_DENIED = 0x0C,
        KMIP_REASON_GENERAL_FAILURE = 0x100,
};

/* State (§9.1.3.2) */
enum kmip_state {
        KMIP_STATE_PRE_ACTIVE = 1,
        KMIP_STATE_ACTIVE = 2,
        KMIP_STATE_DEACTIVATED = 3,
        KMIP_STATE_COMPROMISED = 4,
        KMIP_STATE_DESTROYED = 5,
        KMIP_STATE_DESTROYED_COMPROMISED = 6,
};
const char *kmip_state_to_string(uint32_t state);
const char *kmip_result_reason_to_string(uint32_t reason);

/* Cryptographic Usage Mask bits (§9.1.3.3) */
enum {
        KMIP_USAGE_ENCRYPT = 0x04,
        KMIP_USAGE_DECRYPT = 0x08,
        KMIP_USAGE_WRAP_KEY = 0x10,
        KMIP_USAGE_UNWRAP_KEY = 0x20,
};

/* Revocation Reason Code (§9.1.3.2) */
enum {
        KMIP_REVOKE_UNSPECIFIED = 1,
        KMIP_REVOKE_KEY_COMPROMISE = 2,
        KMIP_REVOKE_CESSATION_OF_OPERATION = 6,
};

#define KMIP_GCM_NONCE_SIZE 12
#define KMIP_GCM_TAG_SIZE 16

typedef struct kmip_config {
        char *host;        /* endpoint host (name or IP literal) */
        uint16_t port;
        char *server_name; /* name or IP the server certificate must carry; NULL: host */
        char *client_cert_pem;
        secret_t *client_key_pem;
        char *server_ca_pem; /* the only trust anchor */
        unsigned timeout_ms; /* connect, handshake and each read/write; 0: default */
        unsigned attempts;   /* transport attempts per request; 0: default */
        unsigned backoff_ms; /* first backoff, doubled each retry; 0: default */
} kmip_config;

void kmip_config_done(kmip_config *c); /* frees the members (wipes the key) */

/* Parses "host:port", "[v6]:port" or "host" (port KMIP_DEFAULT_PORT). */
int kmip_parse_endpoint(const char *s, char **ret_host, uint16_t *ret_port);

typedef struct kmip_client kmip_client;

/* Copies the configuration and loads the certificates (no connection yet). bad-config names the
 * PEM that did not load. */
int kmip_client_new(const kmip_config *config, kmip_client **ret, ct_error *err);
void kmip_client_free(kmip_client *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(kmip_client *, kmip_client_free);

/* Test and capture hook: called with every complete response message (never with requests, which
 * may carry plaintext). Responses to Decrypt carry the unwrapped plaintext: install it only in
 * tests. */
typedef void (*kmip_trace_fn)(void *userdata, uint32_t operation, const uint8_t *msg, size_t len);
void kmip_client_set_response_hook(kmip_client *c, kmip_trace_fn fn, void *userdata);

/* Statistics for benchmarks and tests: TLS connections made and requests sent. */
void kmip_client_stats(const kmip_client *c, unsigned *ret_connects, unsigned *ret_requests);

/* Create (§4.1): an AES symmetric key of `bits` with the usage mask, optionally named (Name
 * attribute, Uninterpreted Text String). The key is generated by the server and never leaves it. */
int kmip_create_aes_key(kmip_client *c, unsigned bits, uint32_t usage_mask, const char *name, char **ret_uid,
                        ct_error *err);
int kmip_activate(kmip_client *c, const char *uid, ct_error *err);
/* Revoke (§4.20) with a reason code; Key Compromise moves any state to Compromised. */
int kmip_revoke(kmip_client *c, const char *uid, uint32_t reason_code, ct_error *err);
int kmip_destroy(kmip_client *c, const char *uid, ct_error *err);

typedef struct kmip_key_info {
        uint32_t state;       /* enum kmip_state, 0 if the server did not say */
        uint32_t algorithm;   /* Cryptographic Algorithm, 3 = AES */
        int32_t length;       /* bits */
        int32_t usage_mask;
} kmip_key_info;
/* Get Attributes (§4.12) for State, Cryptographic Algorithm, Length and Usage Mask. */
int kmip_get_key_info(kmip_client *c, const char *uid, kmip_key_info *ret, ct_error *err);

/* Encrypt/Decrypt (§4.29, §4.30) with AES-GCM inside the server: the caller's 12-byte nonce, a
 * 16-byte tag, the additional data authenticated but not encrypted. Decrypt turns a refusal into
 * the key's state where it can (kek-revoked, kek-destroyed, kek-not-active) and an authentication
 * failure into unwrap-failed. The plaintext comes back as a secret. */
int kmip_encrypt_gcm(kmip_client *c, const char *uid, const secret_t *plaintext, const void *aad, size_t aad_len,
                     const uint8_t nonce[KMIP_GCM_NONCE_SIZE], uint8_t **ret_ciphertext, size_t *ret_ciphertext_len,
                     uint8_t ret_tag[KMIP_GCM_TAG_SIZE], ct_error *err);
int kmip_decrypt_gcm(kmip_client *c, const char *uid, const uint8_t *ciphertext, size_t ciphertext_len,
                     const void *aad, size_t aad_len, const uint8_t nonce[KMIP_GCM_NONCE_SIZE],
                     const uint8_t tag[KMIP_GCM_TAG_SIZE], secret_t **ret_plaintext, ct_error *err);

/* The response parser, exposed for the fuzz target and unit tests: decodes a Response Message,
 * checks the header and the single batch item for `operation`, and on success returns the tree
 * and the index of the Response Payload (TTLV_NONE if absent). A failed result becomes a ct_error
 * with the mapped reason and the server's Result Message. */
struct ttlv_tree;
int kmip_parse_response(const uint8_t *msg, size_t len, uint32_t operation, struct ttlv_tree **ret_tree,
                        size_t *ret_payload, ct_error *err);
