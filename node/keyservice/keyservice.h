/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-keyservice's parts apart from main (so tests and the fuzzer reach them):
 * /kms.API/GetDataKey on the wire (schemas/keyservice.proto) and the secret files.
 *
 * GetDataKeyRequest { string data_key_id = 1; uint32 length = 2; } is decoded by hand rather than
 * with protobuf-c, because protobuf-c hands a string field back NUL-terminated without its length:
 * an ID with an embedded NUL would silently become a shorter ID and another key. Decoding follows
 * the protobuf wire format (last value of a field wins, unknown fields skipped, uint32 takes the
 * low 32 bits of the varint, as Go's proto.Unmarshal does); a wrong wire type for a known field,
 * a truncated field, a group or field number 0 are malformed. */
#pragma once

#include "basic/error.h"
#include "basic/secret.h"
#include "kms/kms.h"

#define KEYSERVICE_METHOD "/kms.API/GetDataKey"
#define KEYSERVICE_MAX_REQUEST (64 * 1024)
#define KEYSERVICE_SECRET_FILE_MAX 4096

typedef struct keyservice_request {
        const char *data_key_id; /* points into the request; not NUL-terminated */
        size_t data_key_id_len;
        uint32_t length;
} keyservice_request;

/* -EBADMSG with reason "request-malformed" (layer "keyservice"). */
int keyservice_request_decode(const uint8_t *buf, size_t len, keyservice_request *ret, ct_error *err);
/* GetDataKeyResponse { bytes data_key = 1; }: tag, varint length, key. */
#define KEYSERVICE_MAX_RESPONSE (1 + 2 + KMS_MAX_DATA_KEY_LENGTH)
/* Encodes into buf (KEYSERVICE_MAX_RESPONSE bytes); returns the length. */
size_t keyservice_response_encode(const secret_t *data_key, uint8_t buf[static KEYSERVICE_MAX_RESPONSE]);

/* The whole call: decode, ask the KMS ("key-" + id, length), encode into buf (the caller's, which
 * it wipes: it holds the key). Errors carry the reasons of kms.h (key-id-empty, key-id-invalid for
 * a NUL in the ID, length-invalid) or request-malformed. */
int keyservice_get_data_key(kms *k, const uint8_t *req, size_t req_len, uint8_t buf[static KEYSERVICE_MAX_RESPONSE],
                            size_t *ret_len, ct_error *err);

/* Reads a secret file (/var/config/mastersecret, /var/config/salt: raw bytes): a regular file,
 * mode 0600 or 0400 (no group/other bits), at least min_len and at most KEYSERVICE_SECRET_FILE_MAX
 * bytes. Errors (layer "keyservice"): "file-unreadable", "file-permissions", "file-too-short",
 * "file-too-large"; the detail names the file (`what`: "master secret", "salt"). */
int keyservice_read_secret_file(const char *path, const char *what, size_t min_len, secret_t **ret, ct_error *err);

/* Reads a kms:// URI file (/var/config/kms-uri, written by the bootstrapper for kms://kmip; it may
 * carry the KMIP client key inline, so it is a secret and never goes on a command line): the same
 * checks as a secret file, at most KMS_MAX_URI bytes after one trailing newline ("\n" or "\r\n") is
 * dropped, no NUL, starts with "kms://". *ret holds the URI NUL-terminated (secret_t). Errors as
 * keyservice_read_secret_file, plus "uri-invalid" (the detail never quotes the file). */
int keyservice_read_kms_uri_file(const char *path, secret_t **ret, ct_error *err);

/* The configuration the bootstrapper leaves in DIR (docs/node.md, "constellation-keyservice"):
 * DIR/kms-uri, or DIR/mastersecret and DIR/salt. Exactly one of the two must be there. */
#define KEYSERVICE_CONFIG_KMS_URI "kms-uri"
#define KEYSERVICE_CONFIG_MASTER_SECRET "mastersecret"
#define KEYSERVICE_CONFIG_SALT "salt"
typedef enum keyservice_config_kind {
        KEYSERVICE_CONFIG_URI,   /* DIR/kms-uri */
        KEYSERVICE_CONFIG_FILES, /* DIR/mastersecret + DIR/salt */
} keyservice_config_kind;
/* Which configuration DIR holds (lstat only; the files are checked when read). Errors (layer
 * "keyservice"): "config-missing" (neither), "config-ambiguous" (kms-uri beside mastersecret or
 * salt: the bootstrapper writes one, so the other is stale or planted), "file-unreadable". */
int keyservice_config_find(const char *dir, keyservice_config_kind *ret, ct_error *err);

/* The same configuration in the control planes' shared store (etcd, lib/etcd; the bootstrapper
 * moves it there after Init, docs/node.md "The shared store"): KEYSERVICE_ETCD_PREFIX + kms-uri, or
 * + mastersecret and + salt; exactly one of the two, checked as the files are (sizes, no NUL and
 * the kms:// scheme for the URI). Opens the KMS from it. Errors as above ("config-missing",
 * "config-ambiguous", "file-too-short" / "file-too-large" for a value, "uri-invalid") or lib/etcd's. */
#define KEYSERVICE_ETCD_PREFIX "/constellation/keyservice/"
struct etcd_client;
int keyservice_open_etcd(struct etcd_client *client, kms **ret, ct_error *err);
