/* SPDX-License-Identifier: Apache-2.0 */
/* Kubernetes components as Constellation installs them at init and join (reference
 * constellation.md §8, internal/installer): each components.Component {url, hash, install_path,
 * extract} is fetched, its "sha256:<hex>" pin checked, then written to install_path, or (extract)
 * unpacked from tar.gz into the directory install_path.
 *
 * Order, so that nothing unpinned ever reaches the disk:
 *   1. components_validate(): shape only, no I/O: URL scheme (https://, http://, data:), pin
 *      syntax, install path absolute, normalised and under one of the allowed roots. The
 *      bootstrapper validates every component of a request before it changes anything.
 *   2. fetch into memory with lib/http (size cap, connect and total timeouts) or decode the data:
 *      URL, bounded by the same cap;
 *   3. SHA-256 of the bytes compared in constant time with the pin: a mismatch writes nothing;
 *   4. a plain file: written to a private temp file (0600, O_CLOEXEC) in the target directory,
 *      fsync, chmod 0755, renameat over install_path. An archive: every entry is checked first
 *      (regular files, directories and symlinks whose target stays inside; no absolute names, no
 *      "..", no devices, FIFOs, sockets or hard links, bounded count, name length and total size),
 *      and only then extracted, each file again through temp file + rename.
 * Directories from the allowed root down to the target are created 0755 and opened one component
 * at a time with O_NOFOLLOW, so a symlink planted on the path cannot redirect a write outside the
 * root (the state disk).
 *
 * Errors: negative errno + ct_error (layer "components") with a reason:
 *   url-scheme, url-malformed, hash-malformed, path-invalid, path-outside-root   (validation)
 *   fetch-failed (unreachable, timeout, HTTP status), too-large, hash-mismatch,
 *   archive-malformed, archive-unsafe (entry refused: absolute, "..", link escaping, device...),
 *   io (writing on the node). The detail names the component by index and URL (data: URLs are cut
 *   short) and never includes secrets (components carry none). */
#pragma once

#include "basic/error.h"
#include "basic/macro.h"

#define COMPONENTS_HASH_PREFIX "sha256:"
#define COMPONENTS_MAX_URL (1024u * 1024) /* data: URLs carry kubeadm patches inline */
#define COMPONENTS_DEFAULT_MAX_SIZE (512u * 1024 * 1024)
#define COMPONENTS_MAX_PATH 1024u
#define COMPONENTS_MAX_ARCHIVE_ENTRIES 10000u

typedef struct component_spec {
        const char *url;
        const char *hash;
        const char *install_path;
        bool extract;
} component_spec;

typedef struct components_options {
        /* Install paths must lie strictly below one of these absolute directories (NULL-terminated;
         * on a node: /run/state and its bind mounts /opt, /etc/kubernetes, /etc/cni, /var). */
        const char *const *allowed_roots;
        size_t max_size;         /* download / data: size cap; 0: COMPONENTS_DEFAULT_MAX_SIZE */
        size_t max_extract_size; /* total bytes unpacked from one archive; 0: 4 * max_size */
        long connect_timeout_ms; /* 0: 10 s */
        long timeout_ms;         /* whole download; 0: 10 min */
} components_options;

/* Step 1 for one component (index only for messages). No I/O. */
int components_validate(const component_spec *c, size_t index, const components_options *o, ct_error *err);
/* Steps 2-4 for one component (validates again first). */
int components_install(const component_spec *c, size_t index, const components_options *o, ct_error *err);

/* Parses "sha256:<64 hex>" into ret. -EBADMSG hash-malformed otherwise (other algorithms too). */
int components_parse_hash(const char *hash, uint8_t ret[32], ct_error *err);
/* Decodes a data: URL (RFC 2397: "data:[<mediatype>][;base64],<data>", %XX escapes in the
 * non-base64 form) of at most max_size decoded bytes. */
int components_decode_data_url(const char *url, size_t max_size, uint8_t **ret, size_t *ret_len, ct_error *err);
