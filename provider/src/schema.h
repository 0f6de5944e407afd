/* SPDX-License-Identifier: Apache-2.0 */
/* The provider's schema model. Each resource, data source and the provider itself declares its
 * attributes once, as a table of tf_attr; from that table come the GetProviderSchema answer,
 * the cty type used to decode and encode DynamicValues, config validation (with diagnostics
 * naming the attribute), planning (computed attributes unknown on create, RequiresReplace,
 * write-only attributes planned null) and state upgrade. */
#pragma once

#include "cty/cty.h"
#include "diag.h"
#include "tfplugin6.pb-c.h"

typedef enum tf_mode {
        TF_REQUIRED,
        TF_OPTIONAL,
        TF_COMPUTED,
        TF_OPTIONAL_COMPUTED,
} tf_mode;

typedef enum tf_nesting {
        TF_NEST_NONE,   /* a plain attribute of type kind (elem_kind for list/map/set) */
        TF_NEST_SINGLE, /* nested attributes as an object */
        TF_NEST_LIST,
        TF_NEST_MAP,
} tf_nesting;

typedef struct tf_attr tf_attr;

/* A validator sees a known, non-null value; it adds diagnostics at `path`. */
typedef void (*tf_validate_fn)(const tf_attr *attr, const cty_value *v, const tf_path *path, tf_diags *diags);

struct tf_attr {
        const char *name;
        cty_kind kind;      /* CTY_STRING, CTY_NUMBER, CTY_BOOL, CTY_LIST, CTY_MAP, CTY_SET */
        cty_kind elem_kind; /* for list/map/set of primitives */
        tf_nesting nesting;
        const tf_attr *nested; /* NULL-name-terminated table for nested attributes */
        tf_mode mode;
        bool sensitive;
        bool write_only;       /* never stored in state or plan (Terraform >= 1.11) */
        bool requires_replace; /* a change forces a new resource */
        const char *description;
        tf_validate_fn validate;
        const void *validate_arg; /* e.g. NULL-terminated list of allowed strings, or a regex */
};

#define TF_ATTR_END { .name = NULL }

/* The cty object type of a table (attributes sorted by name). */
cty_type *tf_schema_type(const tf_attr *attrs);
/* GetProviderSchema representation (Schema with its Block); free with protobuf_c_message_free_unpacked. */
Tfplugin6__Schema *tf_schema_to_proto(const tf_attr *attrs, const char *description, int64_t version);

/* Runs validators over a config value (unknown values are skipped: Terraform validates again
 * once they are known). */
void tf_schema_validate(const tf_attr *attrs, const cty_value *config, const tf_path *path, tf_diags *diags);

/* Turns proposed_new_state into a plan: computed attributes that are null become unknown,
 * write-only attributes become null. Appends the paths of requires_replace attributes to
 * *ret_replace (paths to attributes present in the schema). Takes ownership of proposed. */
cty_value *tf_schema_plan(const tf_attr *attrs, cty_value *proposed);
/* Top-level attribute names marked requires_replace, NULL-terminated (static storage). */
size_t tf_schema_requires_replace(const tf_attr *attrs, const char **ret, size_t max);
/* Sets write-only attributes (recursively) to null: for plans, apply results and state. */
void tf_schema_null_write_only(const tf_attr *attrs, cty_value *obj);

/* Finds a top-level attribute. */
const tf_attr *tf_schema_find(const tf_attr *attrs, const char *name);
/* Convenience: string attribute of an object value, or NULL if null/unknown/absent. */
const char *tf_get_string(const cty_value *obj, const char *name);

/* A resource or data source type. */
typedef struct tf_provider_state tf_provider_state;

typedef struct tf_resource_ops {
        const char *type_name;
        const tf_attr *attrs;
        const char *description;
        int64_t schema_version;
        /* Extra checks across attributes, after per-attribute validators. */
        void (*validate)(const cty_value *config, tf_diags *diags);
        /* Managed resources: */
        /* Optional: adjusts the plan of a create or an update (prior null on create) after the
         * schema's rules (e.g. marks computed attributes unknown); an error diagnostic refuses the
         * plan. Returns 0 or -ENOMEM. */
        int (*plan)(tf_provider_state *p, const cty_value *prior, cty_value *planned, tf_diags *diags);
        cty_value *(*create)(tf_provider_state *p, const cty_value *planned, const cty_value *config, tf_diags *diags);
        cty_value *(*update)(tf_provider_state *p, const cty_value *prior, const cty_value *planned,
                             const cty_value *config, tf_diags *diags);
        /* Returns the refreshed state (a copy of current if nothing to ask), or NULL if gone. */
        cty_value *(*read)(tf_provider_state *p, const cty_value *current, tf_diags *diags);
        void (*delete)(tf_provider_state *p, const cty_value *prior, tf_diags *diags);
        cty_value *(*import)(tf_provider_state *p, const char *id, tf_diags *diags);
        /* Data sources: */
        cty_value *(*read_data)(tf_provider_state *p, const cty_value *config, tf_diags *diags);
} tf_resource_ops;

/* Configured provider: from ConfigureProvider. */
struct tf_provider_state {
        char *cdn_url;
        char *cosign_public_key;
        char *rekor_url;
        char *rekor_public_key;
        bool configured;
};
