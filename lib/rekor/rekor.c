/* SPDX-License-Identifier: Apache-2.0 */
#include <jansson.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>

#include "basic/cleanup-openssl.h"
#include "basic/encoding.h"
#include "basic/secret.h"
#include "http/http.h"
#include "rekor/rekor.h"

const char *rekor_reason_to_string(rekor_reason r) {
        static const char *const s[] = {
                [REKOR_OK] = "entry verified",
                [REKOR_MALFORMED] = "malformed entry",
                [REKOR_LOG_ID_MISMATCH] = "entry was logged by another log (logID does not match the Rekor key)",
                [REKOR_SET_INVALID] = "signed entry timestamp does not verify with the Rekor key",
                [REKOR_INCLUSION_PROOF_INVALID] = "inclusion proof does not lead to the tree's root hash",
                [REKOR_CHECKPOINT_MALFORMED] = "checkpoint cannot be parsed",
                [REKOR_CHECKPOINT_SIGNATURE_INVALID] = "checkpoint is not signed by the Rekor key",
                [REKOR_CHECKPOINT_ROOT_MISMATCH] = "checkpoint is for a different tree than the inclusion proof",
                [REKOR_BODY_MALFORMED] = "entry body is not a hashedrekord v0.0.1 record",
                [REKOR_BODY_HASH_MISMATCH] = "entry is for a different artifact hash",
                [REKOR_BODY_KEY_MISMATCH] = "entry was signed with a different public key",
                [REKOR_BODY_SIGNATURE_MISMATCH] = "entry carries a different signature",
                [REKOR_NOT_FOUND] = "no entry for the artifact in the log",
                [REKOR_UNREACHABLE] = "the log could not be reached",
                [REKOR_NO_VERIFIED_ENTRY] = "no entry for the artifact in the log verifies with the signer's key",
        };
        return (unsigned) r < ELEMENTSOF(s) && s[r] ? s[r] : "unknown reason";
}

void rekor_entry_done(rekor_entry *e) {
        free(e->body);
        free(e->set);
        free(e->hashes);
        free(e->checkpoint);
        *e = (rekor_entry){ 0 };
}

_printf_(2, 3) static int perr(char **ret_error, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        if (ret_error && vasprintf(ret_error, fmt, ap) < 0)
                *ret_error = NULL;
        va_end(ap);
        return -EBADMSG;
}

/* Integers arrive as JSON numbers (REST) or decimal strings (bundles, protobuf JSON int64). */
static int get_int64(json_t *j, int64_t *ret) {
        if (json_is_integer(j)) {
                *ret = json_integer_value(j);
                return 0;
        }
        const char *s = json_string_value(j);
        if (!s || !*s)
                return -EINVAL;
        char *end;
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || *end || v < 0)
                return -EINVAL;
        *ret = v;
        return 0;
}

static int get_b64(json_t *j, uint8_t **ret, size_t *ret_len) {
        const char *s = json_string_value(j);
        return s ? base64_decode(s, strlen(s), BASE64_STD, ret, ret_len) : -EINVAL;
}

static int get_digest(json_t *j, bool hex, uint8_t out[32]) {
        const char *s = json_string_value(j);
        if (!s)
                return -EINVAL;
        if (hex)
                return hex_decode_exact(s, out, 32);
        _cleanup_free_ uint8_t *b = NULL;
        size_t n;
        if (base64_decode(s, strlen(s), BASE64_STD, &b, &n) < 0 || n != 32)
                return -EINVAL;
        memcpy(out, b, 32);
        return 0;
}

static int parse_proof(json_t *proof, bool hex, rekor_entry *e, char **ret_error) {
        if (!proof)
                return 0;
        json_t *hashes = json_object_get(proof, "hashes");
        if (get_int64(json_object_get(proof, "logIndex"), &e->proof_index) < 0 ||
            get_int64(json_object_get(proof, "treeSize"), &e->tree_size) < 0 ||
            get_digest(json_object_get(proof, "rootHash"), hex, e->root) < 0 || !json_is_array(hashes))
                return perr(ret_error, "inclusionProof: logIndex, treeSize, rootHash and hashes are required");
        size_t n = json_array_size(hashes);
        if (n > REKOR_MAX_PROOF_HASHES)
                return perr(ret_error, "inclusionProof: %zu hashes is more than a tree can need", n);
        e->hashes = calloc(n + 1, 32);
        if (!e->hashes)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                if (get_digest(json_array_get(hashes, i), hex, e->hashes[i]) < 0)
                        return perr(ret_error, "inclusionProof.hashes[%zu]: not a SHA-256 digest", i);
        e->n_hashes = n;
        json_t *cp = json_object_get(proof, "checkpoint");
        const char *text = json_is_object(cp) ? json_string_value(json_object_get(cp, "envelope")) : json_string_value(cp);
        /* A proof without a checkpoint parses, but does not verify: nothing signs its root. */
        if (text && !(e->checkpoint = strdup(text)))
                return -ENOMEM;
        e->has_proof = true;
        return 0;
}

int rekor_bundle_parse(const uint8_t *buf, size_t len, rekor_entry *ret, char **ret_error) {
        if (len > REKOR_MAX_DOCUMENT)
                return perr(ret_error, "bundle larger than 1 MiB");
        json_error_t jerr;
        _cleanup_(json_decrefp) json_t *j = json_loadb((const char *) buf, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!j)
                return perr(ret_error, "not JSON: %s", jerr.text);
        json_t *entries = json_object_get(json_object_get(j, "verificationMaterial"), "tlogEntries");
        json_t *t = json_array_get(entries, 0);
        if (!t)
                return perr(ret_error, "verificationMaterial.tlogEntries: no entry");
        rekor_entry e = { 0 };
        int r;
        json_t *kv = json_object_get(t, "kindVersion");
        if (!streq_ptr(json_string_value(json_object_get(kv, "kind")), "hashedrekord")) {
                r = perr(ret_error, "tlogEntries[0].kindVersion: only hashedrekord entries are supported");
                goto fail;
        }
        if (get_b64(json_object_get(t, "canonicalizedBody"), &e.body, &e.body_len) < 0 ||
            get_int64(json_object_get(t, "integratedTime"), &e.integrated_time) < 0 ||
            get_int64(json_object_get(t, "logIndex"), &e.log_index) < 0 ||
            get_digest(json_object_get(json_object_get(t, "logId"), "keyId"), false, e.log_id) < 0 ||
            get_b64(json_object_get(json_object_get(t, "inclusionPromise"), "signedEntryTimestamp"), &e.set,
                    &e.set_len) < 0) {
                r = perr(ret_error,
                         "tlogEntries[0]: canonicalizedBody, integratedTime, logIndex, logId.keyId and "
                         "inclusionPromise.signedEntryTimestamp are required");
                goto fail;
        }
        if ((r = parse_proof(json_object_get(t, "inclusionProof"), false, &e, ret_error)) < 0)
                goto fail;
        *ret = e;
        return 0;
fail:
        rekor_entry_done(&e);
        return r;
}

/* RFC 9162 §2.1.1: leaf hash = SHA-256(0x00 || entry). */
static void leaf_hash(const uint8_t *body, size_t len, uint8_t out[32]) {
        static const uint8_t prefix = 0x00;
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        unsigned int n = 32;
        if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(c, &prefix, 1) != 1 ||
            EVP_DigestUpdate(c, body, len) != 1 || EVP_DigestFinal_ex(c, out, &n) != 1)
                memset(out, 0, 32); /* cannot match any root */
        EVP_MD_CTX_free(c);
}

int rekor_api_entry_parse(const uint8_t *buf, size_t len, rekor_entry *ret, char **ret_error) {
        if (len > REKOR_MAX_DOCUMENT)
                return perr(ret_error, "entry larger than 1 MiB");
        json_error_t jerr;
        _cleanup_(json_decrefp) json_t *j = json_loadb((const char *) buf, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!j || !json_is_object(j) || json_object_size(j) != 1)
                return perr(ret_error, "expected exactly one entry keyed by its UUID");
        void *it = json_object_iter(j);
        const char *uuid = json_object_iter_key(it);
        json_t *t = json_object_iter_value(it);
        rekor_entry e = { 0 };
        int r;
        uint8_t leaf[32];
        _cleanup_free_ char *leaf_hex = NULL;
        json_t *ver = json_object_get(t, "verification");
        if (get_b64(json_object_get(t, "body"), &e.body, &e.body_len) < 0 ||
            get_int64(json_object_get(t, "integratedTime"), &e.integrated_time) < 0 ||
            get_int64(json_object_get(t, "logIndex"), &e.log_index) < 0 ||
            get_digest(json_object_get(t, "logID"), true, e.log_id) < 0 ||
            get_b64(json_object_get(ver, "signedEntryTimestamp"), &e.set, &e.set_len) < 0) {
                r = perr(ret_error, "entry: body, integratedTime, logIndex, logID and verification.signedEntryTimestamp "
                                    "are required");
                goto fail;
        }
        if ((r = parse_proof(json_object_get(ver, "inclusionProof"), true, &e, ret_error)) < 0)
                goto fail;
        /* The UUID ends with the leaf hash: it must name this body. */
        leaf_hash(e.body, e.body_len, leaf);
        leaf_hex = hex_encode(leaf, 32);
        size_t ul = strlen(uuid);
        if (ul < 64 || !leaf_hex || strcmp(uuid + ul - 64, leaf_hex) != 0) {
                r = perr(ret_error, "entry UUID %s does not end with the body's leaf hash", uuid);
                goto fail;
        }
        *ret = e;
        return 0;
fail:
        rekor_entry_done(&e);
        return r;
}

static int verify_sig(EVP_PKEY *key, const uint8_t *msg, size_t len, const uint8_t *sig, size_t sig_len) {
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (!ctx || EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, key) != 1)
                return -ENOMEM;
        return EVP_DigestVerify(ctx, sig, sig_len, msg, len) == 1 ? 0 : -EBADMSG;
}

static int spki_sha256(EVP_PKEY *key, uint8_t out[32]) {
        unsigned char *der = NULL;
        int n = i2d_PUBKEY(key, &der);
        if (n <= 0)
                return -EINVAL;
        SHA256(der, (size_t) n, out);
        OPENSSL_free(der);
        return 0;
}

static void hash_children(const uint8_t l[32], const uint8_t r[32], uint8_t out[32]) {
        uint8_t buf[65];
        buf[0] = 0x01; /* RFC 9162 §2.1.1: interior node prefix */
        memcpy(buf + 1, l, 32);
        memcpy(buf + 33, r, 32);
        SHA256(buf, sizeof(buf), out);
}

/* RFC 9162 §2.1.3.2 inclusion proof verification. */
static bool inclusion_ok(const rekor_entry *e) {
        if (e->proof_index < 0 || e->tree_size <= 0 || e->proof_index >= e->tree_size)
                return false;
        uint64_t fn = (uint64_t) e->proof_index, sn = (uint64_t) e->tree_size - 1;
        uint8_t r[32];
        leaf_hash(e->body, e->body_len, r);
        for (size_t i = 0; i < e->n_hashes; i++) {
                if (sn == 0)
                        return false;
                if ((fn & 1) || fn == sn) {
                        hash_children(e->hashes[i], r, r);
                        if (!(fn & 1))
                                while (!(fn & 1) && fn != 0) {
                                        fn >>= 1;
                                        sn >>= 1;
                                }
                } else
                        hash_children(r, e->hashes[i], r);
                fn >>= 1;
                sn >>= 1;
        }
        return sn == 0 && ct_memeq(r, 32, e->root, 32);
}

/* Signed note (C2SP signed-note): body lines end at the first empty line; signature lines are
 * "— <name> <base64(4-byte key hint || signature)>". Checks that one signature with the log's
 * key hint verifies, and that the note's size and root match the proof. */
static rekor_reason checkpoint_check(const rekor_entry *e, EVP_PKEY *key) {
        const char *text = e->checkpoint, *sep = text ? strstr(text, "\n\n") : NULL;
        if (!sep)
                return REKOR_CHECKPOINT_MALFORMED;
        size_t signed_len = (size_t) (sep - text) + 1;
        /* Line 2: tree size, line 3: base64 root. */
        const char *l2 = strchr(text, '\n');
        const char *l3 = l2 ? strchr(l2 + 1, '\n') : NULL;
        const char *l4 = l3 ? strchr(l3 + 1, '\n') : NULL;
        if (!l2 || !l3 || !l4 || l4 > sep)
                return REKOR_CHECKPOINT_MALFORMED;
        char size_buf[32], root_buf[64];
        size_t sl = (size_t) (l3 - l2 - 1), rl = (size_t) (l4 - l3 - 1);
        if (sl == 0 || sl >= sizeof(size_buf) || rl == 0 || rl >= sizeof(root_buf))
                return REKOR_CHECKPOINT_MALFORMED;
        memcpy(size_buf, l2 + 1, sl);
        size_buf[sl] = 0;
        memcpy(root_buf, l3 + 1, rl);
        root_buf[rl] = 0;
        _cleanup_free_ uint8_t *root = NULL;
        size_t root_len;
        char *end;
        long long size = strtoll(size_buf, &end, 10);
        if (*end || base64_decode(root_buf, rl, BASE64_STD, &root, &root_len) < 0 || root_len != 32)
                return REKOR_CHECKPOINT_MALFORMED;

        bool signed_ok = false;
        for (const char *line = sep + 2; *line;) {
                const char *nl = strchr(line, '\n'), *eol = nl ? nl : line + strlen(line);
                static const char dash[] = "\xe2\x80\x94 "; /* U+2014 EM DASH, space */
                if ((size_t) (eol - line) > strlen(dash) && strncmp(line, dash, strlen(dash)) == 0) {
                        const char *sp = memrchr(line, ' ', (size_t) (eol - line));
                        _cleanup_free_ uint8_t *sig = NULL;
                        size_t sig_len;
                        if (sp && base64_decode(sp + 1, (size_t) (eol - sp - 1), BASE64_STD, &sig, &sig_len) == 0 &&
                            sig_len > 4 && memcmp(sig, e->log_id, 4) == 0 &&
                            verify_sig(key, (const uint8_t *) text, signed_len, sig + 4, sig_len - 4) == 0)
                                signed_ok = true;
                }
                line = nl ? nl + 1 : eol;
        }
        if (!signed_ok)
                return REKOR_CHECKPOINT_SIGNATURE_INVALID;
        if (size != e->tree_size || !ct_memeq(root, 32, e->root, 32))
                return REKOR_CHECKPOINT_ROOT_MISMATCH;
        return REKOR_OK;
}

int rekor_verify_entry(const rekor_entry *e, EVP_PKEY *log_key, rekor_reason *ret_reason, char **ret_detail) {
        rekor_reason reason = REKOR_OK;
        uint8_t id[32];
        if (!log_key || spki_sha256(log_key, id) < 0)
                reason = REKOR_MALFORMED;
        else if (!ct_memeq(id, 32, e->log_id, 32))
                reason = REKOR_LOG_ID_MISMATCH;
        if (reason == REKOR_OK) {
                /* The SET signs canonical JSON: sorted keys, no whitespace. */
                _cleanup_free_ char *body_b64 = base64_encode(e->body, e->body_len, BASE64_STD);
                _cleanup_free_ char *log_id_hex = hex_encode(e->log_id, 32);
                json_t *payload = json_pack("{s:s,s:I,s:s,s:I}", "body", body_b64, "integratedTime",
                                            (json_int_t) e->integrated_time, "logID", log_id_hex, "logIndex",
                                            (json_int_t) e->log_index);
                _cleanup_free_ char *canon = payload ? json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
                json_decref(payload);
                if (!canon)
                        return -ENOMEM;
                if (verify_sig(log_key, (const uint8_t *) canon, strlen(canon), e->set, e->set_len) < 0)
                        reason = REKOR_SET_INVALID;
        }
        if (reason == REKOR_OK && e->has_proof) {
                if (!inclusion_ok(e))
                        reason = REKOR_INCLUSION_PROOF_INVALID;
                else
                        reason = checkpoint_check(e, log_key);
        }
        if (ret_reason)
                *ret_reason = reason;
        if (reason != REKOR_OK && ret_detail &&
            asprintf(ret_detail, "log index %" PRId64 ": %s", e->log_index, rekor_reason_to_string(reason)) < 0)
                *ret_detail = NULL;
        return reason == REKOR_OK ? 0 : -EBADMSG;
}

int rekor_verify_body(const rekor_entry *e, const uint8_t artifact_sha256[32], EVP_PKEY *signer_key,
                      const char *sig_b64, rekor_reason *ret_reason) {
        rekor_reason reason = REKOR_OK;
        json_error_t jerr;
        _cleanup_(json_decrefp) json_t *b = json_loadb((const char *) e->body, e->body_len, 0, &jerr);
        json_t *spec = json_object_get(b, "spec");
        json_t *hash = json_object_get(json_object_get(spec, "data"), "hash");
        json_t *sig = json_object_get(spec, "signature");
        const char *kind = json_string_value(json_object_get(b, "kind"));
        const char *ver = json_string_value(json_object_get(b, "apiVersion"));
        const char *algo = json_string_value(json_object_get(hash, "algorithm"));
        const char *value = json_string_value(json_object_get(hash, "value"));
        const char *content = json_string_value(json_object_get(sig, "content"));
        const char *key_b64 = json_string_value(json_object_get(json_object_get(sig, "publicKey"), "content"));
        uint8_t digest[32];
        if (!streq_ptr(kind, "hashedrekord") || !streq_ptr(ver, "0.0.1") || !streq_ptr(algo, "sha256") || !value ||
            !content || !key_b64 || hex_decode_exact(value, digest, 32) < 0)
                reason = REKOR_BODY_MALFORMED;
        else if (!ct_memeq(digest, 32, artifact_sha256, 32))
                reason = REKOR_BODY_HASH_MISMATCH;
        else {
                /* publicKey.content is base64 of a PEM public key: compare keys, not text. */
                _cleanup_free_ uint8_t *pem = NULL;
                size_t pem_len;
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *logged = NULL;
                if (base64_decode(key_b64, strlen(key_b64), BASE64_STD, &pem, &pem_len) < 0)
                        reason = REKOR_BODY_MALFORMED;
                else {
                        _cleanup_(BIO_freep) BIO *bio = BIO_new_mem_buf(pem, (int) pem_len);
                        logged = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
                        if (!logged && pem_len <= INT_MAX) {
                                /* hashedrekord also carries an X.509 certificate (keyless/Fulcio
                                 * signing): an entry someone else made that way names another key. */
                                _cleanup_(BIO_freep) BIO *cb = BIO_new_mem_buf(pem, (int) pem_len);
                                _cleanup_(X509_freep) X509 *cert = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
                                logged = cert ? X509_get_pubkey(cert) : NULL;
                        }
                        if (!logged)
                                reason = REKOR_BODY_MALFORMED;
                        else if (!signer_key || EVP_PKEY_eq(logged, signer_key) != 1)
                                reason = REKOR_BODY_KEY_MISMATCH;
                }
        }
        if (reason == REKOR_OK && sig_b64) {
                size_t n = strlen(sig_b64);
                while (n > 0 && (sig_b64[n - 1] == '\n' || sig_b64[n - 1] == ' ' || sig_b64[n - 1] == '\r'))
                        n--;
                if (strlen(content) != n || memcmp(content, sig_b64, n) != 0)
                        reason = REKOR_BODY_SIGNATURE_MISMATCH;
        }
        if (ret_reason)
                *ret_reason = reason;
        return reason == REKOR_OK ? 0 : -EBADMSG;
}

/* Fetches /api/v1/log/entries/<uuid> and verifies it fully. 0, or -EBADMSG with *ret_reason and
 * *ret_error (malloc'd, optional), -ENOMEM. */
static int fetch_and_verify(const char *rekor_url, const char *uuid, const uint8_t artifact_sha256[32],
                            EVP_PKEY *signer_key, EVP_PKEY *log_key, rekor_reason *ret_reason, char **ret_error) {
        _cleanup_free_ char *url = NULL;
        _cleanup_free_ uint8_t *body = NULL;
        size_t len;
        http_options ho = { .max_size = REKOR_MAX_DOCUMENT, .timeout_ms = 30000 };
        int r;

        for (const char *p = uuid; *p; p++)
                if (!strchr("0123456789abcdef", *p)) {
                        *ret_reason = REKOR_MALFORMED;
                        return perr(ret_error, "the index returned \"%.80s\", not a hex entry UUID", uuid);
                }
        if (asprintf(&url, "%s/api/v1/log/entries/%s", rekor_url, uuid) < 0)
                return -ENOMEM;
        r = http_get(url, &ho, &body, &len, ret_error);
        if (r < 0) {
                *ret_reason = r == -ENOENT ? REKOR_NOT_FOUND : REKOR_UNREACHABLE;
                return -EBADMSG;
        }
        rekor_entry e;
        if (rekor_api_entry_parse(body, len, &e, ret_error) < 0) {
                *ret_reason = REKOR_MALFORMED;
                return -EBADMSG;
        }
        r = rekor_verify_entry(&e, log_key, ret_reason, NULL);
        if (r >= 0)
                r = rekor_verify_body(&e, artifact_sha256, signer_key, NULL, ret_reason);
        rekor_entry_done(&e);
        return r < 0 ? -EBADMSG : 0;
}

int rekor_lookup_and_verify(const char *rekor_url, const uint8_t artifact_sha256[32], EVP_PKEY *signer_key,
                            EVP_PKEY *log_key, rekor_reason *ret_reason, char **ret_detail) {
        _cleanup_free_ char *url = NULL, *req = NULL, *err = NULL, *first_err = NULL, *first_uuid = NULL,
                                *hex = hex_encode(artifact_sha256, 32);
        _cleanup_free_ uint8_t *body = NULL;
        size_t len;
        http_options ho = { .max_size = REKOR_MAX_DOCUMENT, .timeout_ms = 30000 };
        _cleanup_(json_decrefp) json_t *uuids = NULL;
        rekor_reason reason, first_reason = REKOR_OK;
        size_t n, tried = 0;
        int r;

        if (ret_detail)
                *ret_detail = NULL;
        /* POST /api/v1/index/retrieve {"hash":"sha256:<hex>"} -> ["<uuid>", ...] */
        if (!hex || asprintf(&url, "%s/api/v1/index/retrieve", rekor_url) < 0 ||
            asprintf(&req, "{\"hash\":\"sha256:%s\"}", hex) < 0)
                return -ENOMEM;
        r = http_post_json(url, req, &ho, &body, &len, &err);
        if (r < 0) {
                reason = REKOR_UNREACHABLE;
                goto fail;
        }
        uuids = json_loadb((const char *) body, len, 0, NULL);
        if (!json_is_array(uuids)) {
                reason = REKOR_MALFORMED;
                free(err);
                err = strdup("the index answer is not a JSON array of entry UUIDs");
                goto fail;
        }
        n = json_array_size(uuids);
        if (n == 0) {
                reason = REKOR_NOT_FOUND;
                goto fail;
        }
        /* Anyone can log an entry for the same artifact hash under their own key, so the first UUID
         * may well be someone else's: a foreign entry must not block ours. Try the entries in the
         * index's order, at most REKOR_MAX_LOOKUP_ENTRIES (each is one HTTP GET), and accept the
         * first that fully verifies (SET, inclusion proof, checkpoint, and a body naming this hash
         * and the signer's key). */
        for (size_t i = 0; i < n && tried < REKOR_MAX_LOOKUP_ENTRIES; i++) {
                const char *uuid = json_string_value(json_array_get(uuids, i));
                _cleanup_free_ char *e = NULL;
                rekor_reason er = REKOR_MALFORMED;
                tried++;
                if (!uuid) {
                        er = REKOR_MALFORMED;
                        e = strdup("not a string");
                } else {
                        r = fetch_and_verify(rekor_url, uuid, artifact_sha256, signer_key, log_key, &er, &e);
                        if (r == -ENOMEM)
                                return r;
                        if (r == 0) {
                                if (ret_reason)
                                        *ret_reason = REKOR_OK;
                                return 0;
                        }
                }
                if (tried == 1) {
                        first_reason = er;
                        first_err = TAKE_PTR(e);
                        first_uuid = strdup(uuid ?: "?");
                }
        }
        /* None is ours. One entry: its own reason (as before). Several: say how many were tried and
         * why the first failed; an unreachable log stays "unreachable". */
        free(err);
        err = NULL;
        if (tried == 1) {
                reason = first_reason;
                err = TAKE_PTR(first_err);
                goto fail;
        }
        reason = first_reason == REKOR_UNREACHABLE ? REKOR_UNREACHABLE : REKOR_NO_VERIFIED_ENTRY;
        if (asprintf(&err, "%zu of %zu entries for sha256:%s tried%s, none verifies with the signer's key; the first "
                     "(%s): %s%s%s", tried, n, hex, n > tried ? " (the limit)" : "", first_uuid ?: "?",
                     rekor_reason_to_string(first_reason), first_err ? ": " : "", first_err ?: "") < 0)
                err = NULL;
fail:
        if (ret_reason)
                *ret_reason = reason;
        if (ret_detail && asprintf(ret_detail, "%s%s%s", rekor_reason_to_string(reason), err ? ": " : "", err ?: "") < 0)
                *ret_detail = NULL;
        return -EBADMSG;
}
