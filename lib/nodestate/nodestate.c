/* SPDX-License-Identifier: Apache-2.0 */
/* node_state.json (nodestate.h; Constellation internal/nodestate). */
#include <jansson.h>
#include <stdio.h>
#include <sys/stat.h>

#include "basic/encoding.h"
#include "basic/fileio.h"
#include "nodestate/nodestate.h"

#define LAYER "nodestate"

const char *nodestate_role_to_string(nodestate_role r) {
        switch (r) {
        case NODESTATE_ROLE_CONTROL_PLANE:
                return "ControlPlane";
        case NODESTATE_ROLE_WORKER:
                return "Worker";
        }
        return NULL;
}

int nodestate_parse(const void *buf, size_t len, nodestate *ret, ct_error *err) {
        if (!buf || !ret)
                return ct_error_set(err, -EINVAL, LAYER, "invalid-argument", "no buffer");
        if (len > NODESTATE_MAX_SIZE)
                return ct_error_set(err, -EBADMSG, LAYER, "too-large", "%zu bytes (at most %d)", len,
                                    NODESTATE_MAX_SIZE);
        if (memchr(buf, '\0', len))
                return ct_error_set(err, -EBADMSG, LAYER, "json-invalid", "contains NUL");
        json_error_t jerr;
        json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                return ct_error_set(err, -EBADMSG, LAYER, "json-invalid", "%s (line %d, column %d)", jerr.text,
                                    jerr.line, jerr.column);
        int r = 0;
        uint8_t *salt = NULL;
        size_t salt_len = 0;
        if (!json_is_object(root)) {
                r = ct_error_set(err, -EBADMSG, LAYER, "json-invalid", "not a JSON object");
                goto out;
        }
        const char *key;
        json_t *v;
        json_object_foreach(root, key, v) {
                if (!streq(key, "Role") && !streq(key, "MeasurementSalt")) {
                        r = ct_error_set(err, -EBADMSG, LAYER, "unknown-key", "unknown key (only Role, MeasurementSalt)");
                        goto out;
                }
        }
        json_t *role = json_object_get(root, "Role"), *js = json_object_get(root, "MeasurementSalt");
        if (!role || !js) {
                r = ct_error_set(err, -EBADMSG, LAYER, "missing-key", "%s missing", !role ? "Role" : "MeasurementSalt");
                goto out;
        }
        nodestate s = { 0 };
        const char *rs = json_is_string(role) ? json_string_value(role) : NULL;
        /* json_string_length guards against "Worker\u0000x" comparing equal as a C string. */
        if (rs && json_string_length(role) == strlen(rs) && streq(rs, "ControlPlane"))
                s.role = NODESTATE_ROLE_CONTROL_PLANE;
        else if (rs && json_string_length(role) == strlen(rs) && streq(rs, "Worker"))
                s.role = NODESTATE_ROLE_WORKER;
        else {
                r = ct_error_set(err, -EBADMSG, LAYER, "role-invalid", "Role is not \"ControlPlane\" or \"Worker\"");
                goto out;
        }
        if (!json_is_string(js)) {
                r = ct_error_set(err, -EBADMSG, LAYER, "salt-invalid", "MeasurementSalt is not a string");
                goto out;
        }
        /* Go's encoding/json writes []byte as padded standard base64; only that is accepted. */
        size_t sl = json_string_length(js);
        if (sl % 4 != 0 || base64_decode(json_string_value(js), sl, BASE64_STD, &salt, &salt_len) < 0) {
                r = ct_error_set(err, -EBADMSG, LAYER, "salt-invalid", "MeasurementSalt is not padded standard base64");
                goto out;
        }
        if (salt_len != NODESTATE_SALT_LEN) {
                r = ct_error_set(err, -EBADMSG, LAYER, "salt-length", "MeasurementSalt decodes to %zu bytes, not %d",
                                 salt_len, NODESTATE_SALT_LEN);
                goto out;
        }
        memcpy(s.measurement_salt, salt, NODESTATE_SALT_LEN);
        *ret = s;
out:
        free(salt);
        json_decref(root);
        return r;
}

char *nodestate_format(const nodestate *s) {
        const char *role = s ? nodestate_role_to_string(s->role) : NULL;
        if (!role)
                return NULL;
        _cleanup_free_ char *b64 = base64_encode(s->measurement_salt, NODESTATE_SALT_LEN, BASE64_STD);
        if (!b64)
                return NULL;
        char *out;
        if (asprintf(&out, "{\"Role\":\"%s\",\"MeasurementSalt\":\"%s\"}", role, b64) < 0)
                return NULL;
        return out;
}

int nodestate_read(const char *path, nodestate *ret, ct_error *err) {
        if (!path)
                path = NODESTATE_PATH;
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0;
        int r = read_full_file(path, NODESTATE_MAX_SIZE, &buf, &len);
        if (r == -ENOENT)
                return ct_error_set(err, r, LAYER, "missing", "%s: no such file", path);
        if (r == -EFBIG)
                return ct_error_set(err, -EBADMSG, LAYER, "too-large", "%s: larger than %d bytes", path,
                                    NODESTATE_MAX_SIZE);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "read", "%s: %s", path, strerror(-r));
        r = nodestate_parse(buf, len, ret, err);
        if (r < 0)
                ct_error_prefix(err, "%s", path);
        return r;
}

int nodestate_write(const char *path, const nodestate *s, ct_error *err) {
        if (!path)
                path = NODESTATE_PATH;
        _cleanup_free_ char *json = nodestate_format(s);
        if (!json)
                return ct_error_set(err, -EINVAL, LAYER, "role-invalid", "cannot format node state");
        int r = mkdir_parents_private(path);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "write", "%s: parent directory: %s", path, strerror(-r));
        r = write_file_atomic(path, json, strlen(json), 0600);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "write", "%s: %s", path, strerror(-r));
        return 0;
}
