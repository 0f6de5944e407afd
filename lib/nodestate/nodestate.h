/* SPDX-License-Identifier: Apache-2.0 */
/* node_state.json on the state disk (Constellation internal/nodestate):
 *   /run/state/constellation/node_state.json = {"Role":"ControlPlane"|"Worker","MeasurementSalt":"<base64 std>"}
 * Written by the bootstrapper at init/join, read by the disk-mapper after it unlocked an existing
 * disk (the measurement salt, with the measurement secret, gives the cluster ID for PCR 15).
 *
 * The file is on a disk the infrastructure can roll back or (before the unlock proves the key)
 * swap, so reading is strict: at most NODESTATE_MAX_SIZE bytes, a JSON object with exactly these
 * two keys, Role one of the two strings, MeasurementSalt standard base64 (with padding) of exactly
 * 32 bytes. Errors are -EBADMSG with layer "nodestate" and a reason:
 *   `too-large`, `json-invalid`, `unknown-key`, `missing-key`, `role-invalid`, `salt-invalid`,
 *   `salt-length`; reading a missing file is -ENOENT `missing`. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "basic/error.h"

#define NODESTATE_PATH "/run/state/constellation/node_state.json"
#define NODESTATE_MAX_SIZE 4096
#define NODESTATE_SALT_LEN 32

typedef enum nodestate_role {
        NODESTATE_ROLE_CONTROL_PLANE,
        NODESTATE_ROLE_WORKER,
} nodestate_role;

typedef struct nodestate {
        nodestate_role role;
        uint8_t measurement_salt[NODESTATE_SALT_LEN];
} nodestate;

/* "ControlPlane" / "Worker" (Constellation's role.Role JSON strings). */
const char *nodestate_role_to_string(nodestate_role r);

/* Parses the JSON document in buf (len bytes, need not be NUL-terminated). Fuzz target. */
int nodestate_parse(const void *buf, size_t len, nodestate *ret, ct_error *err);
/* The JSON Constellation writes (malloc'd, compact, keys in Role, MeasurementSalt order). */
char *nodestate_format(const nodestate *s);

/* Reads and parses path (NULL = NODESTATE_PATH). */
int nodestate_read(const char *path, nodestate *ret, ct_error *err);
/* Writes path (NULL = NODESTATE_PATH) with mode 0600 by a temporary file in the same directory,
 * fsync and rename (the directory is created 0700 if missing). */
int nodestate_write(const char *path, const nodestate *s, ct_error *err);
