/* SPDX-License-Identifier: Apache-2.0 */
/* tfplugin6 RPCs driven by the schema model (terraform-plugin-protocol.md §4–§6). One table maps
 * each method to its request and response descriptors and a handler; tfplugin_handle() is the one
 * path every call takes: unpack with protobuf-c's generic API (protoc-c emits no helpers for nested
 * messages, §4.4), a response initialised from its descriptor, the handler, the diagnostics
 * attached to the response's `diagnostics` field, pack. Allocation failures anywhere fail the call
 * with RESOURCE_EXHAUSTED rather than answering with a part missing; every buffer that held
 * request or response bytes is wiped when freed. */
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "basic/log.h"
#include "basic/secret.h"
#include "plugin.h"
#include "provider.h"

const tf_resource_ops *const tf_resources[] = { &tf_resource_cluster, &tf_resource_qemu_infrastructure, NULL };
const tf_resource_ops *const tf_data_sources[] = {
        &tf_data_image,
        &tf_data_attestation,
        NULL,
};

/* protobuf-c allocator that wipes what it frees: unpacked requests hold the configuration's
 * msgpack (master_secret, init_secret, the import URI with the master secret), responses hold
 * state (kubeconfig, client key). glibc and ASan both report the usable size of a block. */
static void *wiping_alloc(void *allocator_data, size_t size) {
        return malloc(size);
}

static void wiping_free(void *allocator_data, void *p) {
        if (p) {
                erase_memory(p, malloc_usable_size(p));
                free(p);
        }
}

static ProtobufCAllocator wiping_allocator = { .alloc = wiping_alloc, .free = wiping_free };

static void message_free(ProtobufCMessage *m) {
        if (m)
                protobuf_c_message_free_unpacked(m, &wiping_allocator);
}

/* Encodes v (NULL: null of t) as a new DynamicValue in *ret. */
static int dynamic_value_new(const cty_value *v, const cty_type *t, Tfplugin6__DynamicValue **ret) {
        Tfplugin6__DynamicValue *dv = calloc(1, sizeof(*dv));
        if (!dv)
                return -ENOMEM;
        tfplugin6__dynamic_value__init(dv);
        int r = cty_msgpack_encode(v, t, &dv->msgpack.data, &dv->msgpack.len);
        if (r < 0) {
                free(dv);
                return r;
        }
        *ret = dv;
        return 0;
}

/* Decodes a DynamicValue (msgpack, else JSON, else null: §6.1). A value that does not decode is
 * a diagnostic (returns -EBADMSG); only -ENOMEM fails the call. */
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
        if (r < 0 && r != -ENOMEM)
                tf_error(diags, NULL, "Invalid value from Terraform", "The %s could not be decoded: %s.", what,
                         err ? err : strerror(-r));
        return r;
}

/* -ENOMEM passes through; any other failure already became a diagnostic. */
#define DECODED(r) ((r) >= 0 ? 1 : (r) == -ENOMEM ? (r) : 0)

static int copy_bytes(ProtobufCBinaryData *dst, const ProtobufCBinaryData *src) {
        if (!src->len)
                return 0;
        if (!(dst->data = malloc(src->len)))
                return -ENOMEM;
        memcpy(dst->data, src->data, src->len);
        dst->len = src->len;
        return 0;
}

static const tf_resource_ops *find_type(const tf_resource_ops *const *list, const char *name) {
        for (size_t i = 0; list[i]; i++)
                if (streq(list[i]->type_name, name ?: ""))
                        return list[i];
        return NULL;
}

static const tf_resource_ops *find_or_diag(const tf_resource_ops *const *list, const char *kind, const char *name,
                                           tf_diags *d) {
        const tf_resource_ops *ops = find_type(list, name);
        if (!ops)
                tf_error(d, NULL, "Unknown type", "This provider has no %s named \"%s\".", kind, name ?: "");
        return ops;
}

static size_t count(const tf_resource_ops *const *list) {
        size_t n = 0;
        while (list[n])
                n++;
        return n;
}

/* --- handlers: each fills a response initialised from its descriptor and adds diagnostics to d;
 * the dispatcher attaches those. They return 0, or -ENOMEM (the call then fails as a whole). --- */

typedef int (*handler_fn)(tf_provider_state *p, const void *request, void *response, tf_diags *d);

static int h_get_provider_schema(tf_provider_state *p, const void *request, void *response, tf_diags *d) {
        Tfplugin6__GetProviderSchema__Response *r = response;
        if (!(r->provider = tf_schema_to_proto(tf_provider_attrs, "Constellation: confidential Kubernetes clusters.", 0)))
                return -ENOMEM;
        size_t nr = count(tf_resources), nd = count(tf_data_sources);
        if (!(r->resource_schemas = calloc(nr + 1, sizeof(*r->resource_schemas))) ||
            !(r->data_source_schemas = calloc(nd + 1, sizeof(*r->data_source_schemas))))
                return -ENOMEM;
        for (size_t i = 0; i < nr; i++) {
                Tfplugin6__GetProviderSchema__Response__ResourceSchemasEntry *e = calloc(1, sizeof(*e));
                if (!e)
                        return -ENOMEM;
                tfplugin6__get_provider_schema__response__resource_schemas_entry__init(e);
                r->resource_schemas[r->n_resource_schemas++] = e;
                const tf_resource_ops *o = tf_resources[i];
                if (!(e->key = strdup(o->type_name)) ||
                    !(e->value = tf_schema_to_proto(o->attrs, o->description, o->schema_version)))
                        return -ENOMEM;
        }
        for (size_t i = 0; i < nd; i++) {
                Tfplugin6__GetProviderSchema__Response__DataSourceSchemasEntry *e = calloc(1, sizeof(*e));
                if (!e)
                        return -ENOMEM;
                tfplugin6__get_provider_schema__response__data_source_schemas_entry__init(e);
                r->data_source_schemas[r->n_data_source_schemas++] = e;
                const tf_resource_ops *o = tf_data_sources[i];
                if (!(e->key = strdup(o->type_name)) ||
                    !(e->value = tf_schema_to_proto(o->attrs, o->description, o->schema_version)))
                        return -ENOMEM;
        }
        if (!(r->server_capabilities = calloc(1, sizeof(*r->server_capabilities))))
                return -ENOMEM;
        tfplugin6__server_capabilities__init(r->server_capabilities);
        /* The schema never changes between processes: let Terraform skip asking again (§4.3). */
        r->server_capabilities->get_provider_schema_optional = true;
        return 0;
}

static int h_get_metadata(tf_provider_state *p, const void *request, void *response, tf_diags *d) {
        Tfplugin6__GetMetadata__Response *r = response;
        if (!(r->server_capabilities = calloc(1, sizeof(*r->server_capabilities))))
                return -ENOMEM;
        tfplugin6__server_capabilities__init(r->server_capabilities);
        size_t nr = count(tf_resources), nd = count(tf_data_sources);
        if (!(r->resources = calloc(nr + 1, sizeof(*r->resources))) ||
            !(r->data_sources = calloc(nd + 1, sizeof(*r->data_sources))))
                return -ENOMEM;
        for (size_t i = 0; i < nr; i++) {
                Tfplugin6__GetMetadata__ResourceMetadata *e = calloc(1, sizeof(*e));
                if (!e)
                        return -ENOMEM;
                tfplugin6__get_metadata__resource_metadata__init(e);
                r->resources[r->n_resources++] = e;
                if (!(e->type_name = strdup(tf_resources[i]->type_name)))
                        return -ENOMEM;
        }
        for (size_t i = 0; i < nd; i++) {
                Tfplugin6__GetMetadata__DataSourceMetadata *e = calloc(1, sizeof(*e));
                if (!e)
                        return -ENOMEM;
                tfplugin6__get_metadata__data_source_metadata__init(e);
                r->data_sources[r->n_data_sources++] = e;
                if (!(e->type_name = strdup(tf_data_sources[i]->type_name)))
                        return -ENOMEM;
        }
        return 0;
}

static int h_validate_provider_config(tf_provider_state *p, const void *request, void *response, tf_diags *d) {
        const Tfplugin6__ValidateProviderConfig__Request *req = request;
        _cleanup_(cty_type_unrefp) cty_type *t = tf_schema_type(tf_provider_attrs);
        _cleanup_(cty_value_freep) cty_value *config = NULL;
        if (!t)
                return -ENOMEM;
        int r = DECODED(dynamic_value_decode(req->config, t, "provider configuration", d, &config));
        if (r > 0)
                tf_schema_validate(tf_provider_attrs, config, NULL, d);
        return MIN(r, 0);
}

static int validate_config(const tf_resource_ops *ops, const Tfplugin6__DynamicValue *dv, tf_diags *d) {
        _cleanup_(cty_type_unrefp) cty_type *t = tf_schema_type(ops->attrs);
        _cleanup_(cty_value_freep) cty_value *config = NULL;
        if (!t)
                return -ENOMEM;
        int r = DECODED(dynamic_value_decode(dv, t, "configuration", d, &config));
        if (r > 0) {
                tf_schema_validate(ops->attrs, config, NULL, d);
                if (ops->validate)
                        ops->validate(config, d);
        }
        return MIN(r, 0);
}

static int h_validate_resource_config(tf_provider_state *p, const void *request, void *response, tf_diags *d) {
        const Tfplugin6__ValidateResourceConfig__Request *req = request;
        const tf_resource_ops *ops = find_or_diag(tf_resources, "resource", req->type_name, d);
        return ops ? validate_config(ops, req->config, d) : 0;
}

static int h_validate_data_resource_config(tf_provider_state *p, const void *request, void *response, tf_diags *d) {
        const Tfplugin6__ValidateDataResourceConfig__Request *req = request;
        const tf_resource_ops *ops = find_or_diag(tf_data_sources, "data source", req->type_name, d);
        return ops ? validate_config(ops, req->config, d) : 0;
}

static int h_upgrade_resource_state(tf_provider_state *p, const void *request, void *response, tf_diags *d) {
        const Tfplugin6__UpgradeResourceState__Request *req = request;
        Tfplugin6__UpgradeResourceState__Response *r = response;
        const tf_resource_ops *ops = find_or_diag(tf_resources, "resource", req->type_name, d);
        if (!ops)
                return 0;
        if (req->version > ops->schema_version) {
                tf_error(d, NULL, "State from a newer provider",
                         "The state of %s has schema version %" PRId64 ", newer than this provider's %" PRId64
                         ". Use the provider version that wrote it.",
                         req->type_name, req->version, ops->schema_version);
                return 0;
        }
        if (!req->raw_state || req->raw_state->json.len == 0) {
                tf_error(d, NULL, "Unsupported state format",
                         "The state of %s has no JSON form (flatmap state is from Terraform 0.11 and older).",
                         req->type_name);
                return 0;
        }
        _cleanup_(cty_type_unrefp) cty_type *t = tf_schema_type(ops->attrs);
        _cleanup_(cty_value_freep) cty_value *v = NULL;
        _cleanup_free_ char *err = NULL;
        if (!t)
                return -ENOMEM;
        int k = cty_json_decode(req->raw_state->json.data, req->raw_state->json.len, t, &v, &err);
        if (k == -ENOMEM)
                return k;
        if (k < 0) {
                tf_error(d, NULL, "Invalid state", "The stored state of %s does not match its schema: %s.",
                         req->type_name, err ?: "decode error");
                return 0;
        }
        /* State written by Constellation's provider holds the secrets that are write-only here. */
        tf_schema_null_write_only(ops->attrs, v);
        return dynamic_value_new(v, t, &r->upgraded_state);
}

static pthread_mutex_t provider_lock = PTHREAD_MUTEX_INITIALIZER;

static int h_configure_provider(tf_provider_state *p, const void *request, void *response, tf_diags *d) {
        const Tfplugin6__ConfigureProvider__Request *req = request;
        _cleanup_(cty_type_unrefp) cty_type *t = tf_schema_type(tf_provider_attrs);
        _cleanup_(cty_value_freep) cty_value *config = NULL;
        if (!t)
                return -ENOMEM;
        int r = DECODED(dynamic_value_decode(req->config, t, "provider configuration", d, &config));
        if (r > 0) {
                tf_schema_validate(tf_provider_attrs, config, NULL, d);
                if (!d->has_error) {
                        pthread_mutex_lock(&provider_lock);
                        tf_provider_configure(p, config, d);
                        pthread_mutex_unlock(&provider_lock);
                }
        }
        return MIN(r, 0);
}

static int h_read_resource(tf_provider_state *p, const void *request, void *response, tf_diags *d) {
        const Tfplugin6__ReadResource__Request *req = request;
        Tfplugin6__ReadResource__Response *r = response;
        const tf_resource_ops *ops = find_or_diag(tf_resources, "resource", req->type_name, d);
        if (!ops)
                return 0;
        _cleanup_(cty_type_unrefp) cty_type *t = tf_schema_type(ops->attrs);
        _cleanup_(cty_value_freep) cty_value *cur = NULL, *next = NULL;
        if (!t)
                return -ENOMEM;
        int k = DECODED(dynamic_value_decode(req->current_state, t, "current state", d, &cur));
        if (k <= 0)
                return k;
        /* NULL from read: the object is gone (tf_resource_ops.read). */
        if (!cur->null)
                next = ops->read(p, cur, d);
        if (next)
                tf_schema_null_write_only(ops->attrs, next);
        if ((k = dynamic_value_new(next, t, &r->new_state)) < 0)
                return k;
        return copy_bytes(&r->private_, &req->private_);
}

static Tfplugin6__AttributePath *attribute_path_new(const char *name) {
        tf_path path = tf_path_child(NULL, name);
        tf_diags tmp = { 0 };
        /* Reuse the diagnostic path builder: build one throwaway diagnostic and steal its path. */
        tf_diags_add(&tmp, false, &path, "", "%s", "");
        Tfplugin6__AttributePath *ap = NULL;
        if (tmp.n == 1 && !tmp.oom) {
                ap = tmp.items[0]->attribute;
                tmp.items[0]->attribute = NULL;
        }
        tf_diags_done(&tmp);
        return ap;
}

static int h_plan_resource_change(tf_provider_state *p, const void *request, void *response, tf_diags *d) {
        const Tfplugin6__PlanResourceChange__Request *req = request;
        Tfplugin6__PlanResourceChange__Response *r = response;
        const tf_resource_ops *ops = find_or_diag(tf_resources, "resource", req->type_name, d);
        if (!ops)
                return 0;
        _cleanup_(cty_type_unrefp) cty_type *t = tf_schema_type(ops->attrs);
        _cleanup_(cty_value_freep) cty_value *prior = NULL, *proposed = NULL, *planned = NULL;
        if (!t)
                return -ENOMEM;
        int k = DECODED(dynamic_value_decode(req->prior_state, t, "prior state", d, &prior));
        if (k > 0)
                k = DECODED(dynamic_value_decode(req->proposed_new_state, t, "proposed new state", d, &proposed));
        if (k <= 0)
                return k;
        /* Start from proposed_new_state, which already satisfies Terraform's plan rules; only
         * computed nulls and write-only values change (§6.4). */
        planned = proposed->null ? TAKE_PTR(proposed) : tf_schema_plan(ops->attrs, TAKE_PTR(proposed));
        if (!planned)
                return -ENOMEM;
        if (ops->plan && !planned->null && (k = ops->plan(p, prior, planned, d)) < 0)
                return k;
        if ((k = dynamic_value_new(planned, t, &r->planned_state)) < 0)
                return k;
        if (!prior->null && !planned->null) {
                const char *names[32];
                size_t n = tf_schema_requires_replace(ops->attrs, names, ELEMENTSOF(names));
                if (!(r->requires_replace = calloc(n + 1, sizeof(*r->requires_replace))))
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++) {
                        if (!(r->requires_replace[r->n_requires_replace] = attribute_path_new(names[i])))
                                return -ENOMEM;
                        r->n_requires_replace++;
                }
        }
        return copy_bytes(&r->planned_private, &req->prior_private);
}

static int h_apply_resource_change(tf_provider_state *p, const void *request, void *response, tf_diags *d) {
        const Tfplugin6__ApplyResourceChange__Request *req = request;
        Tfplugin6__ApplyResourceChange__Response *r = response;
        const tf_resource_ops *ops = find_or_diag(tf_resources, "resource", req->type_name, d);
        if (!ops)
                return 0;
        _cleanup_(cty_type_unrefp) cty_type *t = tf_schema_type(ops->attrs);
        _cleanup_(cty_value_freep) cty_value *prior = NULL, *planned = NULL, *config = NULL, *next = NULL;
        if (!t)
                return -ENOMEM;
        int k = DECODED(dynamic_value_decode(req->prior_state, t, "prior state", d, &prior));
        if (k > 0)
                k = DECODED(dynamic_value_decode(req->planned_state, t, "planned state", d, &planned));
        if (k > 0)
                k = DECODED(dynamic_value_decode(req->config, t, "configuration", d, &config));
        if (k <= 0)
                return k;
        if (planned->null) {
                ops->delete(p, prior, d);
                /* On a failed delete keep the object in state (§6.5). */
                if (d->has_error && !(next = cty_value_copy(prior)))
                        return -ENOMEM;
        } else if (prior->null)
                next = ops->create(p, planned, config, d);
        else
                next = ops->update(p, prior, planned, config, d);
        if (!next && !planned->null && !d->has_error)
                return -ENOMEM;
        if (next)
                tf_schema_null_write_only(ops->attrs, next);
        if ((k = dynamic_value_new(next, t, &r->new_state)) < 0)
                return k;
        return copy_bytes(&r->private_, &req->planned_private);
}

static int h_import_resource_state(tf_provider_state *p, const void *request, void *response, tf_diags *d) {
        const Tfplugin6__ImportResourceState__Request *req = request;
        Tfplugin6__ImportResourceState__Response *r = response;
        const tf_resource_ops *ops = find_or_diag(tf_resources, "resource", req->type_name, d);
        if (!ops)
                return 0;
        if (!ops->import) {
                tf_error(d, NULL, "Import not supported", "Resource %s cannot be imported.", req->type_name);
                return 0;
        }
        _cleanup_(cty_type_unrefp) cty_type *t = tf_schema_type(ops->attrs);
        if (!t)
                return -ENOMEM;
        _cleanup_(cty_value_freep) cty_value *v = ops->import(p, req->id ?: "", d);
        if (!v)
                return d->has_error ? 0 : -ENOMEM;
        tf_schema_null_write_only(ops->attrs, v);
        if (!(r->imported_resources = calloc(1, sizeof(*r->imported_resources))))
                return -ENOMEM;
        Tfplugin6__ImportResourceState__ImportedResource *ir = calloc(1, sizeof(*ir));
        if (!ir)
                return -ENOMEM;
        tfplugin6__import_resource_state__imported_resource__init(ir);
        r->imported_resources[r->n_imported_resources++] = ir;
        if (!(ir->type_name = strdup(ops->type_name)))
                return -ENOMEM;
        return dynamic_value_new(v, t, &ir->state);
}

static int h_read_data_source(tf_provider_state *p, const void *request, void *response, tf_diags *d) {
        const Tfplugin6__ReadDataSource__Request *req = request;
        Tfplugin6__ReadDataSource__Response *r = response;
        const tf_resource_ops *ops = find_or_diag(tf_data_sources, "data source", req->type_name, d);
        if (!ops)
                return 0;
        _cleanup_(cty_type_unrefp) cty_type *t = tf_schema_type(ops->attrs);
        _cleanup_(cty_value_freep) cty_value *config = NULL, *state = NULL;
        if (!t)
                return -ENOMEM;
        int k = DECODED(dynamic_value_decode(req->config, t, "configuration", d, &config));
        if (k <= 0)
                return k;
        if (!(state = ops->read_data(p, config, d)))
                return d->has_error ? 0 : -ENOMEM;
        return dynamic_value_new(state, t, &r->state);
}

static int h_move_resource_state(tf_provider_state *p, const void *request, void *response, tf_diags *d) {
        tf_error(d, NULL, "Move not supported",
                 "This provider does not support moving resource state between resource types.");
        return 0;
}

static int h_no_ephemeral(tf_provider_state *p, const void *request, void *response, tf_diags *d) {
        tf_error(d, NULL, "No ephemeral resources", "This provider has no ephemeral resources.");
        return 0;
}

static int h_empty(tf_provider_state *p, const void *request, void *response, tf_diags *d) {
        return 0; /* GetFunctions (none), StopProvider (nothing to stop) */
}

static int h_call_function(tf_provider_state *p, const void *request, void *response, tf_diags *d) {
        const Tfplugin6__CallFunction__Request *req = request;
        Tfplugin6__CallFunction__Response *r = response;
        if (!(r->error = calloc(1, sizeof(*r->error))))
                return -ENOMEM;
        tfplugin6__function_error__init(r->error);
        if (asprintf(&r->error->text, "This provider has no function named \"%s\".", req->name ?: "") < 0) {
                r->error->text = NULL;
                return -ENOMEM;
        }
        return 0;
}

struct method {
        const char *name;
        const ProtobufCMessageDescriptor *request, *response;
        handler_fn handle;
};

#define M(n, stem, fn)                                                                                    \
        { "/tfplugin6.Provider/" n, &tfplugin6__##stem##__request__descriptor,                            \
          &tfplugin6__##stem##__response__descriptor, fn }
static const struct method methods[] = {
        M("GetMetadata", get_metadata, h_get_metadata),
        M("GetProviderSchema", get_provider_schema, h_get_provider_schema),
        M("ValidateProviderConfig", validate_provider_config, h_validate_provider_config),
        M("ValidateResourceConfig", validate_resource_config, h_validate_resource_config),
        M("ValidateDataResourceConfig", validate_data_resource_config, h_validate_data_resource_config),
        M("UpgradeResourceState", upgrade_resource_state, h_upgrade_resource_state),
        M("ConfigureProvider", configure_provider, h_configure_provider),
        M("ReadResource", read_resource, h_read_resource),
        M("PlanResourceChange", plan_resource_change, h_plan_resource_change),
        M("ApplyResourceChange", apply_resource_change, h_apply_resource_change),
        M("ImportResourceState", import_resource_state, h_import_resource_state),
        M("MoveResourceState", move_resource_state, h_move_resource_state),
        M("ReadDataSource", read_data_source, h_read_data_source),
        M("ValidateEphemeralResourceConfig", validate_ephemeral_resource_config, h_no_ephemeral),
        M("OpenEphemeralResource", open_ephemeral_resource, h_no_ephemeral),
        M("RenewEphemeralResource", renew_ephemeral_resource, h_no_ephemeral),
        M("CloseEphemeralResource", close_ephemeral_resource, h_no_ephemeral),
        M("GetFunctions", get_functions, h_empty),
        M("CallFunction", call_function, h_call_function),
        M("StopProvider", stop_provider, h_empty),
};

static grpc_status_code fail_status(grpc_status_code code, char **ret_message, const char *method, const char *what) {
        if (asprintf(ret_message, "%s: %s", method, what) < 0)
                *ret_message = NULL;
        return code;
}

/* Hands the diagnostics to the response's `diagnostics` field (every response but GetFunctions,
 * CallFunction and StopProvider has one; those never add any). */
static int attach_diags(ProtobufCMessage *resp, tf_diags *d) {
        if (d->n == 0)
                return 0;
        const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field_by_name(resp->descriptor,
                                                                                            "diagnostics");
        if (!f || f->label != PROTOBUF_C_LABEL_REPEATED || f->type != PROTOBUF_C_TYPE_MESSAGE ||
            f->descriptor != &tfplugin6__diagnostic__descriptor)
                return -EINVAL;
        *(size_t *) ((uint8_t *) resp + f->quantifier_offset) = d->n;
        *(Tfplugin6__Diagnostic ***) ((uint8_t *) resp + f->offset) = d->items;
        *d = (tf_diags){ 0 };
        return 0;
}

grpc_status_code tfplugin_handle(tf_provider_state *p, const char *method, const uint8_t *request, size_t len,
                                 uint8_t **ret, size_t *ret_len, char **ret_message) {
        const struct method *mt = NULL;
        for (size_t i = 0; i < ELEMENTSOF(methods); i++)
                if (streq(methods[i].name, method)) {
                        mt = &methods[i];
                        break;
                }
        if (!mt)
                return fail_status(GRPC_STATUS_UNIMPLEMENTED, ret_message, method, "method not implemented");
        if (len > TF_MAX_REQUEST)
                return fail_status(GRPC_STATUS_RESOURCE_EXHAUSTED, ret_message, method, "request too large");
        const char *short_name = method + strlen("/tfplugin6.Provider/");

        /* One path for every RPC: unpack, dispatch, attach diagnostics, pack. Everything that held
         * request or response bytes is wiped when freed. */
        ProtobufCMessage *req = protobuf_c_message_unpack(mt->request, &wiping_allocator, len, request);
        if (!req)
                return fail_status(GRPC_STATUS_INVALID_ARGUMENT, ret_message, method, "malformed request");
        ProtobufCMessage *resp = calloc(1, mt->response->sizeof_message);
        if (!resp) {
                message_free(req);
                return fail_status(GRPC_STATUS_RESOURCE_EXHAUSTED, ret_message, method, "out of memory");
        }
        mt->response->message_init(resp);
        log_debug("tfplugin: %s", short_name);

        tf_diags d = { 0 };
        int r = mt->handle(p, req, resp, &d);
        message_free(req);
        if (r >= 0 && d.oom)
                r = -ENOMEM;
        if (r >= 0)
                r = attach_diags(resp, &d);
        tf_diags_done(&d);
        if (r < 0) {
                message_free(resp);
                log_error_errno(r, "tfplugin: %s failed", short_name);
                return fail_status(r == -ENOMEM ? GRPC_STATUS_RESOURCE_EXHAUSTED : GRPC_STATUS_INTERNAL, ret_message,
                                   method, r == -ENOMEM ? "out of memory" : "internal error");
        }
        size_t n = protobuf_c_message_get_packed_size(resp);
        uint8_t *buf = malloc(n ? n : 1);
        if (!buf) {
                message_free(resp);
                return fail_status(GRPC_STATUS_RESOURCE_EXHAUSTED, ret_message, method, "out of memory");
        }
        protobuf_c_message_pack(resp, buf);
        message_free(resp);
        *ret = buf;
        *ret_len = n;
        return GRPC_STATUS_OK;
}

/* tfplugin6 calls between the handler's start and its answer (plugin.h). */
static atomic_uint calls_in_flight;

unsigned tfplugin_calls_in_flight(void) {
        return atomic_load(&calls_in_flight);
}

static void rpc_handler(rpc_call *call, const uint8_t *request, size_t len, void *userdata) {
        tf_provider_state *p = userdata;
        uint8_t *resp = NULL;
        _cleanup_free_ char *msg = NULL;
        size_t resp_len = 0;
        atomic_fetch_add(&calls_in_flight, 1);
        grpc_status_code st = tfplugin_handle(p, rpc_call_method(call), request, len, &resp, &resp_len, &msg);
        if (st == GRPC_STATUS_OK)
                (void) rpc_call_reply(call, resp, resp_len);
        else
                (void) rpc_call_fail(call, st, msg);
        /* The packed response may hold sensitive state (kubeconfig, client key). */
        if (resp)
                erase_memory(resp, resp_len);
        free(resp);
        atomic_fetch_sub(&calls_in_flight, 1);
}

int tfplugin_register(rpc_server *server, tf_provider_state *p) {
        for (size_t i = 0; i < ELEMENTSOF(methods); i++) {
                int r = rpc_server_register(server, methods[i].name, rpc_handler, p);
                if (r < 0)
                        return r;
        }
        return 0;
}
