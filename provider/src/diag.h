/* SPDX-License-Identifier: Apache-2.0 */
/* Terraform diagnostics: a growing list that becomes repeated tfplugin6.Diagnostic. Every
 * diagnostic about an attribute carries its AttributePath so Terraform points at the config line
 * (terraform-plugin-protocol.md §4.3). Never put a secret into a summary or detail. */
#pragma once

#include "basic/macro.h"
#include "tfplugin6.pb-c.h"

/* An attribute path: attribute names, with map keys written as "[key]" steps and list indexes
 * as "#N" steps. */
#define TF_PATH_MAX 8
typedef struct tf_path {
        size_t n;
        const char *steps[TF_PATH_MAX];
} tf_path;

static inline tf_path tf_path_child(const tf_path *parent, const char *step) {
        tf_path p = parent ? *parent : (tf_path){ 0 };
        if (p.n < TF_PATH_MAX)
                p.steps[p.n++] = step;
        return p;
}

typedef struct tf_diags {
        size_t n;
        Tfplugin6__Diagnostic **items;
        bool has_error;
        /* A diagnostic could not be allocated: it counts as an error (callers stop), and the RPC
         * fails with RESOURCE_EXHAUSTED instead of answering without it. */
        bool oom;
} tf_diags;

void tf_diags_add(tf_diags *d, bool error, const tf_path *path, const char *summary, const char *detail_fmt, ...)
        _printf_(5, 6);
#define tf_error(d, path, summary, ...) tf_diags_add((d), true, (path), (summary), __VA_ARGS__)
#define tf_warning(d, path, summary, ...) tf_diags_add((d), false, (path), (summary), __VA_ARGS__)
/* Frees the diagnostics (not the list struct itself). */
void tf_diags_done(tf_diags *d);
/* Renders a path as "a.b[\"k\"]" for messages. */
void tf_path_format(const tf_path *p, char *buf, size_t size);
