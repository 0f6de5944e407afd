/* SPDX-License-Identifier: Apache-2.0 */
/* The KMS behind Constellation's kms_uri / storage_uri (reference constellation.md §6,
 * internal/kms/{uri,setup,kms/cluster}):
 *
 *   kms://cluster-kms?key=<b64url>&salt=<b64url>   data key "id" = HKDF-SHA256(ikm = key,
 *                                                   salt = salt, info = "key-" + id, L)
 *   storage://no-store                             (the only storage: cluster-kms stores nothing)
 *
 * URI encoding exactly as Constellation's uri.MasterSecret.EncodeToURI / DecodeMasterSecretFromURI:
 * key and salt in base64.URLEncoding (alphabet "-_", "=" padding required), put into the query
 * unescaped; decoding is Go's url.Parse + url.Values.Get (split at '&', '+' -> ' ', %XX) and then
 * one more url.QueryUnescape, so "%3D" and "%253D" both stand for "=". A missing or empty parameter
 * is refused, like getQueryParameter. We are stricter than Go where Go is lax: no fragment, no path
 * other than "/", no ';' in the query, key >= 16 bytes (MasterSecretLengthMin), salt >= 32 bytes
 * (RNGLengthDefault). URIs carry secrets: nothing here logs them or puts them in an error detail.
 *
 * Backends: a backend is a struct kms_backend_ops (below) plus its state. To add one (engineer F:
 * kms://kmip?..., in lib/kms/kms-kmip.c):
 *   1. write `int kms_kmip_open(const kms_uri *uri, const kms_backend_ops **ret_ops, void **ret_state,
 *      ct_error *err)` that reads its parameters with kms_uri_get() (add its prototype to
 *      kms-internal.h) and fills ops + state;
 *   2. add one line { "kmip", kms_kmip_open } to `backends[]` in kms.c;
 *   3. add kms-kmip.c and ct-kmip to lib/kms/CMakeLists.txt.
 * kms_get_data_key validates key_id and length before it calls the backend, so backends see a
 * non-empty NUL-free id of at most KMS_MAX_KEY_ID bytes and 1 <= length <= KMS_MAX_DATA_KEY_LENGTH.
 *
 * Errors: negative errno + ct_error with layer "kms" and one of the KMS_REASON_* tokens. */
#pragma once

#include "basic/error.h"
#include "basic/macro.h"
#include "basic/secret.h"

#define KMS_MAX_URI 4096
#define KMS_MAX_KEY_ID 1024
/* RFC 5869 §2.3: L <= 255 * HashLen; the cluster KMS derives with HKDF-SHA256. */
#define KMS_MAX_DATA_KEY_LENGTH (255 * 32)
#define KMS_MASTER_SECRET_MIN 16 /* Constellation crypto.MasterSecretLengthMin */
#define KMS_SALT_MIN 32          /* Constellation crypto.RNGLengthDefault */

#define KMS_URI_NO_STORE "storage://no-store"

/* Reason tokens (ct_error.reason, layer "kms"). */
#define KMS_REASON_URI_MALFORMED "uri-malformed"           /* not scheme://host?query, bad %-escape, too long */
#define KMS_REASON_URI_SCHEME "uri-scheme"                 /* kms_uri is not kms://, storage_uri not storage:// */
#define KMS_REASON_BACKEND_UNKNOWN "backend-unknown"       /* kms://<host> we do not know (aws, azure, gcp, ...) */
#define KMS_REASON_STORAGE_UNSUPPORTED "storage-unsupported" /* storage other than no-store */
#define KMS_REASON_PARAMETER_MISSING "parameter-missing"   /* a required query parameter is absent or empty */
#define KMS_REASON_PARAMETER_INVALID "parameter-invalid"   /* not valid padded base64url, or wrong size */
#define KMS_REASON_MASTER_SECRET_SHORT "master-secret-too-short"
#define KMS_REASON_SALT_SHORT "salt-too-short"
#define KMS_REASON_KEY_ID_EMPTY "key-id-empty"
#define KMS_REASON_KEY_ID_INVALID "key-id-invalid"         /* longer than KMS_MAX_KEY_ID */
#define KMS_REASON_LENGTH_INVALID "length-invalid"         /* 0 or > KMS_MAX_DATA_KEY_LENGTH */
#define KMS_REASON_DERIVE "derive-failed"                  /* the backend could not produce the key */

/* A parsed kms:// or storage:// URI: scheme, host, and the query parameters decoded as
 * Constellation decodes them (values held in wiped memory). */
typedef struct kms_uri kms_uri;
int kms_uri_parse(const char *uri, kms_uri **ret, ct_error *err);
void kms_uri_free(kms_uri *u);
DEFINE_TRIVIAL_CLEANUP_FUNC(kms_uri *, kms_uri_free);
const char *kms_uri_scheme(const kms_uri *u);
const char *kms_uri_host(const kms_uri *u);
/* The first value of parameter `name`, fully unescaped; NULL if absent. Owned by u. */
const char *kms_uri_get(const kms_uri *u, const char *name);
/* A required parameter decoded from padded base64url (Go base64.URLEncoding) into a secret;
 * `name` appears in the error detail, the value never does. */
int kms_uri_get_base64(const kms_uri *u, const char *name, secret_t **ret, ct_error *err);

/* One backend. `state` is what the backend's open function returned. */
typedef struct kms_backend_ops {
        const char *name; /* "cluster-kms", "kmip" */
        int (*get_data_key)(void *state, const char *key_id, size_t length, secret_t **ret, ct_error *err);
        void (*free)(void *state);
} kms_backend_ops;

typedef struct kms kms;

/* Opens the KMS for kms_uri and storage_uri (NULL or "" = storage://no-store). */
int kms_open(const char *kms_uri, const char *storage_uri, kms **ret, ct_error *err);
/* A cluster KMS straight from a master secret and salt (the key service's files). Copies both. */
int kms_open_cluster(const secret_t *master_secret, const secret_t *salt, kms **ret, ct_error *err);
/* The data key for key_id (without "key-"; the backend adds what it needs) of `length` bytes. */
int kms_get_data_key(kms *k, const char *key_id, size_t length, secret_t **ret, ct_error *err);
/* "cluster-kms", ... */
const char *kms_backend_name(const kms *k);
void kms_free(kms *k);
DEFINE_TRIVIAL_CLEANUP_FUNC(kms *, kms_free);
