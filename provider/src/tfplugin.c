/* SPDX-License-Identifier: Apache-2.0 */
/* tfplugin6 RPCs driven by the schema model (terraform-plugin-protocol.md §4–§6). Requests are
 * unpacked with protobuf-c's generic API (protoc-c emits no helpers for nested messages, §4.4);
 * responses are built on the heap and freed with protobuf_c_message_free_unpacked. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>

#include "basic/log.h"
#include "provider.h"

const tf_resource_ops *const tf_resources[] = { &tf_resource_cluster, NULL };
const tf_resource_ops *const tf_data_sources[] = {
        &tf_data_image,
        &tf_data_attestation,
        NULL,
};

#define TF_MAX_REQUEST (64u * 1024 * 1024)

static const tf_resource_ops *find_type(const tf_resource_ops *const *list, const char *name) {
        for (size_t i = 0; list[i]; i++)
                if (streq(list[i]->type_name, name ?: ""))
                        return list[i];
        return NULL;
}

static Tfplugin6__DynamicValue *dynamic_value_new(const cty_value *v, const cty_type *t) {
        Tfplugin6__DynamicValue *dv = calloc(1, sizeof(*dv));
        if (!dv)
                return NULL;
        tfplugin6__dynamic_value__init(dv);
        if (cty_msgpack_encode(v, t, &dv->msgpack.data, &dv->msgpack.len) < 0) {
                free(dv);
                return NULL;
        }
        return dv;
}

/* Decodes a DynamicValue (msgpack, else JSON, else null: §6.1). */
static int dynamic_value_decode(const Tfplugin6__DynamicValue *dv, cty_type *t, const char *what, tf_diags *diags,
                                cty_value **ret) {
        _cleanup_free_ char *err = NULL;
        int r;
        if (dv && dv->msgpack.len > 0)
                r = cty_msgpack_decode(dv->msgpack.data, dv->msgpack.len, t, ret, &err);
        else if (dv && dv->json.len > 0)
                r = cty_json_decode(dv->json.data, dv->json.len, t, ret, &err);
        else {
                *ret = cty_null(t);
                r = *ret ? 0 : -ENOMEM;
        }
        if (r < 0)
                tf_error(diags, NULL, "Invalid value from Terraform", "The %s could not be decoded: %s.", what,
                         err ? err : strerror(-r));
        return r;
}

static Tfplugin6__Diagnostic **take_diags(tf_diags *d, size_t *ret_n) {
        Tfplugin6__Diagnostic **items = d->items;
        *ret_n = d->n;
        *d = (tf_diags){ 0 };
        return items;
}

static Tfplugin6__Schema *schema_for(const tf_resource_ops *ops) {
        return tf_schema_to_proto(ops->attrs, ops->description, ops->schema_version);
}

/* --- handlers: each gets the unpacked request and returns the response message --- */

static ProtobufCMessage *h_get_provider_schema(tf_provider_state *p, const ProtobufCMessage *m) {
        Tfplugin6__GetProviderSchema__Response *r = calloc(1, sizeof(*r));
        tfplugin6__get_provider_schema__response__init(r);
        r->provider = tf_schema_to_proto(tf_provider_attrs, "Constellation: confidential Kubernetes clusters.", 0);

        size_t nr = 0, nd = 0;
        while (tf_resources[nr])
                nr++;
        while (tf_data_sources[nd])
                nd++;
        r->resource_schemas = calloc(nr + 1, sizeof(*r->resource_schemas));
        for (size_t i = 0; i < nr; i++) {
                Tfplugin6__GetProviderSchema__Response__ResourceSchemasEntry *e = calloc(1, sizeof(*e));
                tfplugin6__get_provider_schema__response__resource_schemas_entry__init(e);
                e->key = strdup(tf_resources[i]->type_name);
                e->value = schema_for(tf_resources[i]);
                r->resource_schemas[r->n_resource_schemas++] = e;
        }
        r->data_source_schemas = calloc(nd + 1, sizeof(*r->data_source_schemas));
        for (size_t i = 0; i < nd; i++) {
                Tfplugin6__GetProviderSchema__Response__DataSourceSchemasEntry *e = calloc(1, sizeof(*e));
                tfplugin6__get_provider_schema__response__data_source_schemas_entry__init(e);
                e->key = strdup(tf_data_sources[i]->type_name);
                e->value = schema_for(tf_data_sources[i]);
                r->data_source_schemas[r->n_data_source_schemas++] = e;
        }
        r->server_capabilities = calloc(1, sizeof(*r->server_capabilities));
        tfplugin6__server_capabilities__init(r->server_capabilities);
        /* The schema never changes between processes: let Terraform skip asking again (§4.3). */
        r->server_capabilities->get_provider_schema_optional = true;
        return &r->base;
}

static ProtobufCMessage *h_get_metadata(tf_provider_state *p, const ProtobufCMessage *m) {
        Tfplugin6__GetMetadata__Response *r = calloc(1, sizeof(*r));
        tfplugin6__get_metadata__response__init(r);
        r->server_capabilities = calloc(1, sizeof(*r->server_capabilities));
        tfplugin6__server_capabilities__init(r->server_capabilities);
        size_t nr = 0, nd = 0;
        while (tf_resources[nr])
                nr++;
        while (tf_data_sources[nd])
                nd++;
        r->resources = calloc(nr + 1, sizeof(*r->resources));
        for (size_t i = 0; i < nr; i++) {
                Tfplugin6__GetMetadata__ResourceMetadata *e = calloc(1, sizeof(*e));
                tfplugin6__get_metadata__resource_metadata__init(e);
                e->type_name = strdup(tf_resources[i]->type_name);
                r->resources[r->n_resources++] = e;
        }
        r->data_sources = calloc(nd + 1, sizeof(*r->data_sources));
        for (size_t i = 0; i < nd; i++) {
                Tfplugin6__GetMetadata__DataSourceMetadata *e = calloc(1, sizeof(*e));
                tfplugin6__get_metadata__data_source_metadata__init(e);
                e->type_name = strdup(tf_data_sources[i]->type_name);
                r->data_sources[r->n_data_sources++] = e;
        }
        return &r->base;
}

static ProtobufCMessage *h_validate_provider_config(tf_provider_state *p, const ProtobufCMessage *m) {
        const Tfplugin6__ValidateProviderConfig__Request *req = (const void *) m;
        Tfplugin6__ValidateProviderConfig__Response *r = calloc(1, sizeof(*r));
        tfplugin6__validate_provider_config__response__init(r);
        tf_diags d = { 0 };
        _cleanup_(cty_type_unrefp) cty_type *t = tf_schema_type(tf_provider_attrs);
        _cleanup_(cty_value_freep) cty_value *config = NULL;
        if (dynamic_value_decode(req->config, t, "provider configuration", &d, &config) >= 0)
                tf_schema_validate(tf_provider_attrs, config, NULL, &d);
        r->diagnostics = take_diags(&d, &r->n_diagnostics);
        return &r->base;
}

static void validate_config(const tf_resource_ops *ops, const Tfplugin6__DynamicValue *dv, tf_diags *d) {
        _cleanup_(cty_type_unrefp) cty_type *t = tf_schema_type(ops->attrs);
        _cleanup_(cty_value_freep) cty_value *config = NULL;
        if (dynamic_value_decode(dv, t, "configuration", d, &config) < 0)
                return;
        tf_schema_validate(ops->attrs, config, NULL, d);
        if (ops->validate)
                ops->validate(config, d);
}

static void unknown_type(tf_diags *d, const char *kind, const char *name) {
        tf_error(d, NULL, "Unknown type", "This provider has no %s named \"%s\".", kind, name ?: "");
}

static ProtobufCMessage *h_validate_resource_config(tf_provider_state *p, const ProtobufCMessage *m) {
        const Tfplugin6__ValidateResourceConfig__Request *req = (const void *) m;
        Tfplugin6__ValidateResourceConfig__Response *r = calloc(1, sizeof(*r));
        tfplugin6__validate_resource_config__response__init(r);
        tf_diags d = { 0 };
        const tf_resource_ops *ops = find_type(tf_resources, req->type_name);
        if (!ops)
                unknown_type(&d, "resource", req->type_name);
        else
                validate_config(ops, req->config, &d);
        r->diagnostics = take_diags(&d, &r->n_diagnostics);
        return &r->base;
}

static ProtobufCMessage *h_validate_data_resource_config(tf_provider_state *p, const ProtobufCMessage *m) {
        const Tfplugin6__ValidateDataResourceConfig__Request *req = (const void *) m;
        Tfplugin6__ValidateDataResourceConfig__Response *r = calloc(1, sizeof(*r));
        tfplugin6__validate_data_resource_config__response__init(r);
        tf_diags d = { 0 };
        const tf_resource_ops *ops = find_type(tf_data_sources, req->type_name);
        if (!ops)
                unknown_type(&d, "data source", req->type_name);
        else
                validate_config(ops, req->config, &d);
        r->diagnostics = take_diags(&d, &r->n_diagnostics);
        return &r->base;
}

static ProtobufCMessage *h_upgrade_resource_state(tf_provider_state *p, const ProtobufCMessage *m) {
        const Tfplugin6__UpgradeResourceState__Request *req = (const void *) m;
        Tfplugin6__UpgradeResourceState__Response *r = calloc(1, sizeof(*r));
        tfplugin6__upgrade_resource_state__response__init(r);
        tf_diags d = { 0 };
        const tf_resource_ops *ops = find_type(tf_resources, req->type_name);
        if (!ops)
                unknown_type(&d, "resource", req->type_name);
        else if (req->version > ops->schema_version)
                tf_error(&d, NULL, "State from a newer provider",
                         "The state of %s has schema version %" PRId64 ", newer than this provider's %" PRId64
                         ". Use the provider version that wrote it.",
                         req->type_name, req->version, ops->schema_version);
        else if (!req->raw_state || req->raw_state->json.len == 0)
                tf_error(&d, NULL, "Unsupported state format",
                         "The state of %s has no JSON form (flatmap state is from Terraform 0.11 and older).",
                         req->type_name);
        else {
                _cleanup_(cty_type_unrefp) cty_type *t = tf_schema_type(ops->attrs);
                _cleanup_(cty_value_freep) cty_value *v = NULL;
                _cleanup_free_ char *err = NULL;
                if (cty_json_decode(req->raw_state->json.data, req->raw_state->json.len, t, &v, &err) < 0)
                        tf_error(&d, NULL, "Invalid state", "The stored state of %s does not match its schema: %s.",
                                 req->type_name, err ?: "decode error");
                else {
                        tf_schema_null_write_only(ops->attrs, v);
                        r->upgraded_state = dynamic_value_new(v, t);
                }
        }
        r->diagnostics = take_diags(&d, &r->n_diagnostics);
        return &r->base;
}

static pthread_mutex_t provider_lock = PTHREAD_MUTEX_INITIALIZER;

static ProtobufCMessage *h_configure_provider(tf_provider_state *p, const ProtobufCMessage *m) {
        const Tfplugin6__ConfigureProvider__Request *req = (const void *) m;
        Tfplugin6__ConfigureProvider__Response *r = calloc(1, sizeof(*r));
        tfplugin6__configure_provider__response__init(r);
        tf_diags d = { 0 };
        _cleanup_(cty_type_unrefp) cty_type *t = tf_schema_type(tf_provider_attrs);
        _cleanup_(cty_value_freep) cty_value *config = NULL;
        if (dynamic_value_decode(req->config, t, "provider configuration", &d, &config) >= 0) {
                tf_schema_validate(tf_provider_attrs, config, NULL, &d);
                if (!d.has_error) {
                        pthread_mutex_lock(&provider_lock);
                        tf_provider_configure(p, config, &d);
                        pthread_mutex_unlock(&provider_lock);
                }
        }
        r->diagnostics = take_diags(&d, &r->n_diagnostics);
        return &r->base;
}

static void copy_bytes(ProtobufCBinaryData *dst, const ProtobufCBinaryData *src) {
        if (!src->len)
                return;
        dst->data = malloc(src->len);
        if (dst->data) {
                memcpy(dst->data, src->data, src->len);
                dst->len = src->len;
        }
}

static ProtobufCMessage *h_read_resource(tf_provider_state *p, const ProtobufCMessage *m) {
        const Tfplugin6__ReadResource__Request *req = (const void *) m;
        Tfplugin6__ReadResource__Response *r = calloc(1, sizeof(*r));
        tfplugin6__read_resource__response__init(r);
        tf_diags d = { 0 };
        const tf_resource_ops *ops = find_type(tf_resources, req->type_name);
        if (!ops)
                unknown_type(&d, "resource", req->type_name);
        else {
                _cleanup_(cty_type_unrefp) cty_type *t = tf_schema_type(ops->attrs);
                _cleanup_(cty_value_freep) cty_value *cur = NULL;
                if (dynamic_value_decode(req->current_state, t, "current state", &d, &cur) >= 0) {
                        _cleanup_(cty_value_freep) cty_value *next = cur->null ? NULL : ops->read(p, cur, &d);
                        if (next)
                                tf_schema_null_write_only(ops->attrs, next);
                        r->new_state = dynamic_value_new(next, t);
                        copy_bytes(&r->private_, &req->private_);
                }
        }
        r->diagnostics = take_diags(&d, &r->n_diagnostics);
        return &r->base;
}

static Tfplugin6__AttributePath *attribute_path_new(const char *name) {
        tf_path path = tf_path_child(NULL, name);
        tf_diags tmp = { 0 };
        /* Reuse the diagnostic path builder: build one throwaway diagnostic and steal its path. */
        tf_diags_add(&tmp, false, &path, "", "%s", "");
        Tfplugin6__AttributePath *ap = NULL;
        if (tmp.n == 1) {
                ap = tmp.items[0]->attribute;
                tmp.items[0]->attribute = NULL;
        }
        tf_diags_done(&tmp);
        return ap;
}

static ProtobufCMessage *h_plan_resource_change(tf_provider_state *p, const ProtobufCMessage *m) {
        const Tfplugin6__PlanResourceChange__Request *req = (const void *) m;
        Tfplugin6__PlanResourceChange__Response *r = calloc(1, sizeof(*r));
        tfplugin6__plan_resource_change__response__init(r);
        tf_diags d = { 0 };
        const tf_resource_ops *ops = find_type(tf_resources, req->type_name);
        if (!ops)
                unknown_type(&d, "resource", req->type_name);
        else {
                _cleanup_(cty_type_unrefp) cty_type *t = tf_schema_type(ops->attrs);
                _cleanup_(cty_value_freep) cty_value *prior = NULL, *proposed = NULL;
                if (dynamic_value_decode(req->prior_state, t, "prior state", &d, &prior) >= 0 &&
                    dynamic_value_decode(req->proposed_new_state, t, "proposed new state", &d, &proposed) >= 0) {
                        /* Start from proposed_new_state, which already satisfies Terraform's plan
                         * rules; only computed nulls and write-only values change (§6.4). */
                        cty_value *planned = proposed->null ? TAKE_PTR(proposed) : tf_schema_plan(ops->attrs, TAKE_PTR(proposed));
                        r->planned_state = dynamic_value_new(planned, t);
                        if (!prior->null && !planned->null) {
                                const char *names[32];
                                size_t n = tf_schema_requires_replace(ops->attrs, names, ELEMENTSOF(names));
                                r->requires_replace = calloc(n + 1, sizeof(*r->requires_replace));
                                for (size_t i = 0; i < n; i++)
                                        r->requires_replace[r->n_requires_replace++] = attribute_path_new(names[i]);
                        }
                        cty_value_free(planned);
                        copy_bytes(&r->planned_private, &req->prior_private);
                }
        }
        r->diagnostics = take_diags(&d, &r->n_diagnostics);
        return &r->base;
}

static ProtobufCMessage *h_apply_resource_change(tf_provider_state *p, const ProtobufCMessage *m) {
        const Tfplugin6__ApplyResourceChange__Request *req = (const void *) m;
        Tfplugin6__ApplyResourceChange__Response *r = calloc(1, sizeof(*r));
        tfplugin6__apply_resource_change__response__init(r);
        tf_diags d = { 0 };
        const tf_resource_ops *ops = find_type(tf_resources, req->type_name);
        if (!ops)
                unknown_type(&d, "resource", req->type_name);
        else {
                _cleanup_(cty_type_unrefp) cty_type *t = tf_schema_type(ops->attrs);
                _cleanup_(cty_value_freep) cty_value *prior = NULL, *planned = NULL, *config = NULL;
                if (dynamic_value_decode(req->prior_state, t, "prior state", &d, &prior) >= 0 &&
                    dynamic_value_decode(req->planned_state, t, "planned state", &d, &planned) >= 0 &&
                    dynamic_value_decode(req->config, t, "configuration", &d, &config) >= 0) {
                        _cleanup_(cty_value_freep) cty_value *next = NULL;
                        if (planned->null) {
                                ops->delete(p, prior, &d);
                                /* On a failed delete keep the object in state (§6.5). */
                                if (d.has_error)
                                        next = cty_value_copy(prior);
                        } else if (prior->null)
                                next = ops->create(p, planned, config, &d);
                        else
                                next = ops->update(p, prior, planned, config, &d);
                        if (next)
                                tf_schema_null_write_only(ops->attrs, next);
                        r->new_state = dynamic_value_new(next, t);
                        copy_bytes(&r->private_, &req->planned_private);
                }
        }
        r->diagnostics = take_diags(&d, &r->n_diagnostics);
        return &r->base;
}

static ProtobufCMessage *h_import_resource_state(tf_provider_state *p, const ProtobufCMessage *m) {
        const Tfplugin6__ImportResourceState__Request *req = (const void *) m;
        Tfplugin6__ImportResourceState__Response *r = calloc(1, sizeof(*r));
        tfplugin6__import_resource_state__response__init(r);
        tf_diags d = { 0 };
        const tf_resource_ops *ops = find_type(tf_resources, req->type_name);
        if (!ops)
                unknown_type(&d, "resource", req->type_name);
        else if (!ops->import)
                tf_error(&d, NULL, "Import not supported", "Resource %s cannot be imported.", req->type_name);
        else {
                _cleanup_(cty_type_unrefp) cty_type *t = tf_schema_type(ops->attrs);
                _cleanup_(cty_value_freep) cty_value *v = ops->import(p, req->id ?: "", &d);
                if (v) {
                        tf_schema_null_write_only(ops->attrs, v);
                        Tfplugin6__ImportResourceState__ImportedResource *ir = calloc(1, sizeof(*ir));
                        tfplugin6__import_resource_state__imported_resource__init(ir);
                        ir->type_name = strdup(ops->type_name);
                        ir->state = dynamic_value_new(v, t);
                        r->imported_resources = calloc(1, sizeof(*r->imported_resources));
                        r->imported_resources[r->n_imported_resources++] = ir;
                }
        }
        r->diagnostics = take_diags(&d, &r->n_diagnostics);
        return &r->base;
}

static ProtobufCMessage *h_read_data_source(tf_provider_state *p, const ProtobufCMessage *m) {
        const Tfplugin6__ReadDataSource__Request *req = (const void *) m;
        Tfplugin6__ReadDataSource__Response *r = calloc(1, sizeof(*r));
        tfplugin6__read_data_source__response__init(r);
        tf_diags d = { 0 };
        const tf_resource_ops *ops = find_type(tf_data_sources, req->type_name);
        if (!ops)
                unknown_type(&d, "data source", req->type_name);
        else {
                _cleanup_(cty_type_unrefp) cty_type *t = tf_schema_type(ops->attrs);
                _cleanup_(cty_value_freep) cty_value *config = NULL;
                if (dynamic_value_decode(req->config, t, "configuration", &d, &config) >= 0) {
                        _cleanup_(cty_value_freep) cty_value *state = ops->read_data(p, config, &d);
                        if (state)
                                r->state = dynamic_value_new(state, t);
                }
        }
        r->diagnostics = take_diags(&d, &r->n_diagnostics);
        return &r->base;
}

static ProtobufCMessage *h_move_resource_state(tf_provider_state *p, const ProtobufCMessage *m) {
        Tfplugin6__MoveResourceState__Response *r = calloc(1, sizeof(*r));
        tfplugin6__move_resource_state__response__init(r);
        tf_diags d = { 0 };
        tf_error(&d, NULL, "Move not supported",
                 "This provider does not support moving resource state between resource types.");
        r->diagnostics = take_diags(&d, &r->n_diagnostics);
        return &r->base;
}

#define EPHEMERAL_HANDLER(fname, rtype, init)                                                              \
        static ProtobufCMessage *fname(tf_provider_state *p, const ProtobufCMessage *m) {                  \
                rtype *r = calloc(1, sizeof(*r));                                                          \
                init(r);                                                                                   \
                tf_diags d = { 0 };                                                                        \
                tf_error(&d, NULL, "No ephemeral resources", "This provider has no ephemeral resources."); \
                r->diagnostics = take_diags(&d, &r->n_diagnostics);                                        \
                return &r->base;                                                                           \
        }
EPHEMERAL_HANDLER(h_validate_ephemeral, Tfplugin6__ValidateEphemeralResourceConfig__Response,
                  tfplugin6__validate_ephemeral_resource_config__response__init)
EPHEMERAL_HANDLER(h_open_ephemeral, Tfplugin6__OpenEphemeralResource__Response,
                  tfplugin6__open_ephemeral_resource__response__init)
EPHEMERAL_HANDLER(h_renew_ephemeral, Tfplugin6__RenewEphemeralResource__Response,
                  tfplugin6__renew_ephemeral_resource__response__init)
EPHEMERAL_HANDLER(h_close_ephemeral, Tfplugin6__CloseEphemeralResource__Response,
                  tfplugin6__close_ephemeral_resource__response__init)

static ProtobufCMessage *h_get_functions(tf_provider_state *p, const ProtobufCMessage *m) {
        Tfplugin6__GetFunctions__Response *r = calloc(1, sizeof(*r));
        tfplugin6__get_functions__response__init(r);
        return &r->base;
}

static ProtobufCMessage *h_call_function(tf_provider_state *p, const ProtobufCMessage *m) {
        const Tfplugin6__CallFunction__Request *req = (const void *) m;
        Tfplugin6__CallFunction__Response *r = calloc(1, sizeof(*r));
        tfplugin6__call_function__response__init(r);
        r->error = calloc(1, sizeof(*r->error));
        tfplugin6__function_error__init(r->error);
        if (asprintf(&r->error->text, "This provider has no function named \"%s\".", req->name ?: "") < 0)
                r->error->text = NULL;
        return &r->base;
}

static ProtobufCMessage *h_stop_provider(tf_provider_state *p, const ProtobufCMessage *m) {
        Tfplugin6__StopProvider__Response *r = calloc(1, sizeof(*r));
        tfplugin6__stop_provider__response__init(r);
        return &r->base;
}

struct method {
        const char *name;
        const ProtobufCMessageDescriptor *request;
        ProtobufCMessage *(*handle)(tf_provider_state *p, const ProtobufCMessage *req);
};

#define M(n, desc, fn) { "/tfplugin6.Provider/" n, &desc, fn }
static const struct method methods[] = {
        M("GetMetadata", tfplugin6__get_metadata__request__descriptor, h_get_metadata),
        M("GetProviderSchema", tfplugin6__get_provider_schema__request__descriptor, h_get_provider_schema),
        M("ValidateProviderConfig", tfplugin6__validate_provider_config__request__descriptor, h_validate_provider_config),
        M("ValidateResourceConfig", tfplugin6__validate_resource_config__request__descriptor, h_validate_resource_config),
        M("ValidateDataResourceConfig", tfplugin6__validate_data_resource_config__request__descriptor,
          h_validate_data_resource_config),
        M("UpgradeResourceState", tfplugin6__upgrade_resource_state__request__descriptor, h_upgrade_resource_state),
        M("ConfigureProvider", tfplugin6__configure_provider__request__descriptor, h_configure_provider),
        M("ReadResource", tfplugin6__read_resource__request__descriptor, h_read_resource),
        M("PlanResourceChange", tfplugin6__plan_resource_change__request__descriptor, h_plan_resource_change),
        M("ApplyResourceChange", tfplugin6__apply_resource_change__request__descriptor, h_apply_resource_change),
        M("ImportResourceState", tfplugin6__import_resource_state__request__descriptor, h_import_resource_state),
        M("MoveResourceState", tfplugin6__move_resource_state__request__descriptor, h_move_resource_state),
        M("ReadDataSource", tfplugin6__read_data_source__request__descriptor, h_read_data_source),
        M("ValidateEphemeralResourceConfig", tfplugin6__validate_ephemeral_resource_config__request__descriptor,
          h_validate_ephemeral),
        M("OpenEphemeralResource", tfplugin6__open_ephemeral_resource__request__descriptor, h_open_ephemeral),
        M("RenewEphemeralResource", tfplugin6__renew_ephemeral_resource__request__descriptor, h_renew_ephemeral),
        M("CloseEphemeralResource", tfplugin6__close_ephemeral_resource__request__descriptor, h_close_ephemeral),
        M("GetFunctions", tfplugin6__get_functions__request__descriptor, h_get_functions),
        M("CallFunction", tfplugin6__call_function__request__descriptor, h_call_function),
        M("StopProvider", tfplugin6__stop_provider__request__descriptor, h_stop_provider),
};

grpc_status_code tfplugin_handle(tf_provider_state *p, const char *method, const uint8_t *request, size_t len,
                                 uint8_t **ret, size_t *ret_len, char **ret_message) {
        const struct method *mt = NULL;
        for (size_t i = 0; i < ELEMENTSOF(methods); i++)
                if (streq(methods[i].name, method)) {
                        mt = &methods[i];
                        break;
                }
        if (!mt) {
                *ret_message = strdup("method not implemented");
                return GRPC_STATUS_UNIMPLEMENTED;
        }
        if (len > TF_MAX_REQUEST) {
                *ret_message = strdup("request too large");
                return GRPC_STATUS_RESOURCE_EXHAUSTED;
        }
        ProtobufCMessage *req = protobuf_c_message_unpack(mt->request, NULL, len, request);
        if (!req) {
                if (asprintf(ret_message, "%s: malformed request", method) < 0)
                        *ret_message = NULL;
                return GRPC_STATUS_INVALID_ARGUMENT;
        }
        log_debug("tfplugin: %s", method + strlen("/tfplugin6.Provider/"));
        ProtobufCMessage *resp = mt->handle(p, req);
        protobuf_c_message_free_unpacked(req, NULL);
        if (!resp) {
                *ret_message = strdup("out of memory");
                return GRPC_STATUS_RESOURCE_EXHAUSTED;
        }
        size_t n = protobuf_c_message_get_packed_size(resp);
        uint8_t *buf = malloc(n ? n : 1);
        if (!buf) {
                protobuf_c_message_free_unpacked(resp, NULL);
                *ret_message = strdup("out of memory");
                return GRPC_STATUS_RESOURCE_EXHAUSTED;
        }
        protobuf_c_message_pack(resp, buf);
        protobuf_c_message_free_unpacked(resp, NULL);
        *ret = buf;
        *ret_len = n;
        return GRPC_STATUS_OK;
}

static void rpc_handler(rpc_call *call, const uint8_t *request, size_t len, void *userdata) {
        tf_provider_state *p = userdata;
        _cleanup_free_ uint8_t *resp = NULL;
        _cleanup_free_ char *msg = NULL;
        size_t resp_len = 0;
        grpc_status_code st = tfplugin_handle(p, rpc_call_method(call), request, len, &resp, &resp_len, &msg);
        if (st == GRPC_STATUS_OK)
                (void) rpc_call_reply(call, resp, resp_len);
        else
                (void) rpc_call_fail(call, st, msg);
}

int tfplugin_register(rpc_server *server, tf_provider_state *p) {
        for (size_t i = 0; i < ELEMENTSOF(methods); i++) {
                int r = rpc_server_register(server, methods[i].name, rpc_handler, p);
                if (r < 0)
                        return r;
        }
        return 0;
}
