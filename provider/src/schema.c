/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>

#include "schema.h"

static size_t attrs_count(const tf_attr *attrs) {
        size_t n = 0;
        while (attrs && attrs[n].name)
                n++;
        return n;
}

static cty_type *attr_type(const tf_attr *a) {
        cty_type *elem, *t;
        switch (a->nesting) {
        case TF_NEST_SINGLE:
                return tf_schema_type(a->nested);
        case TF_NEST_LIST:
        case TF_NEST_MAP:
                elem = tf_schema_type(a->nested);
                t = a->nesting == TF_NEST_LIST ? cty_type_list(elem) : cty_type_map(elem);
                cty_type_unref(elem);
                return t;
        case TF_NEST_NONE:
                break;
        }
        switch (a->kind) {
        case CTY_STRING:
                return &cty_string;
        case CTY_NUMBER:
                return &cty_number;
        case CTY_BOOL:
                return &cty_bool;
        case CTY_LIST:
        case CTY_SET:
        case CTY_MAP: {
                cty_type *e = a->elem_kind == CTY_NUMBER ? &cty_number : a->elem_kind == CTY_BOOL ? &cty_bool : &cty_string;
                return a->kind == CTY_LIST ? cty_type_list(e) : a->kind == CTY_SET ? cty_type_set(e) : cty_type_map(e);
        }
        default:
                return &cty_dynamic;
        }
}

cty_type *tf_schema_type(const tf_attr *attrs) {
        size_t n = attrs_count(attrs);
        _cleanup_free_ const char **names = calloc(n + 1, sizeof(char *));
        _cleanup_free_ cty_type **types = calloc(n + 1, sizeof(cty_type *));
        if (!names || !types)
                return NULL;
        for (size_t i = 0; i < n; i++) {
                names[i] = attrs[i].name;
                types[i] = attr_type(&attrs[i]);
        }
        cty_type *t = cty_type_object(n, names, types);
        for (size_t i = 0; i < n; i++)
                cty_type_unref(types[i]);
        return t;
}

static Tfplugin6__Schema__Attribute *attr_to_proto(const tf_attr *a, bool force_computed);

/* force_computed: the attributes are nested in a computed-only attribute (a data source's output
 * reusing an input table); Terraform requires them all to be computed too. */
static Tfplugin6__Schema__Attribute **attrs_to_proto(const tf_attr *attrs, bool force_computed, size_t *ret_n) {
        size_t n = attrs_count(attrs);
        Tfplugin6__Schema__Attribute **list = calloc(n + 1, sizeof(*list));
        if (!list)
                return NULL;
        for (size_t i = 0; i < n; i++)
                if (!(list[i] = attr_to_proto(&attrs[i], force_computed))) {
                        /* A NULL element would crash protobuf-c's packer: all or nothing. */
                        for (size_t k = 0; k < i; k++)
                                protobuf_c_message_free_unpacked(&list[k]->base, NULL);
                        free(list);
                        return NULL;
                }
        *ret_n = n;
        return list;
}

static Tfplugin6__Schema__Attribute *attr_to_proto(const tf_attr *a, bool force_computed) {
        Tfplugin6__Schema__Attribute *pa = calloc(1, sizeof(*pa));
        if (!pa)
                return NULL;
        tfplugin6__schema__attribute__init(pa);
        pa->name = strdup(a->name);
        pa->description = strdup(a->description ?: "");
        bool ok = pa->name && pa->description;
        pa->description_kind = TFPLUGIN6__STRING_KIND__MARKDOWN;
        pa->required = !force_computed && a->mode == TF_REQUIRED;
        pa->optional = !force_computed && (a->mode == TF_OPTIONAL || a->mode == TF_OPTIONAL_COMPUTED);
        pa->computed = force_computed || a->mode == TF_COMPUTED || a->mode == TF_OPTIONAL_COMPUTED;
        pa->sensitive = a->sensitive;
        pa->write_only = a->write_only;
        if (a->nesting == TF_NEST_NONE) {
                cty_type *t = attr_type(a);
                char *json = cty_type_to_json(t);
                cty_type_unref(t);
                pa->type.data = (uint8_t *) json;
                pa->type.len = json ? strlen(json) : 0;
                ok = ok && json;
        } else {
                Tfplugin6__Schema__Object *o = calloc(1, sizeof(*o));
                ok = ok && o;
                if (o) {
                        tfplugin6__schema__object__init(o);
                        o->nesting = a->nesting == TF_NEST_SINGLE ? TFPLUGIN6__SCHEMA__OBJECT__NESTING_MODE__SINGLE
                                     : a->nesting == TF_NEST_LIST ? TFPLUGIN6__SCHEMA__OBJECT__NESTING_MODE__LIST
                                                                  : TFPLUGIN6__SCHEMA__OBJECT__NESTING_MODE__MAP;
                        o->attributes = attrs_to_proto(a->nested, force_computed || a->mode == TF_COMPUTED,
                                                       &o->n_attributes);
                        ok = ok && o->attributes;
                }
                pa->nested_type = o;
        }
        if (!ok) {
                protobuf_c_message_free_unpacked(&pa->base, NULL);
                return NULL;
        }
        return pa;
}

Tfplugin6__Schema *tf_schema_to_proto(const tf_attr *attrs, const char *description, int64_t version) {
        Tfplugin6__Schema *s = calloc(1, sizeof(*s));
        Tfplugin6__Schema__Block *b = calloc(1, sizeof(*b));
        if (!s || !b) {
                free(s);
                free(b);
                return NULL;
        }
        tfplugin6__schema__init(s);
        tfplugin6__schema__block__init(b);
        s->version = version;
        /* A null block crashes Terraform (§4.3): always set one, even for an empty schema. */
        s->block = b;
        b->description = strdup(description ?: "");
        b->description_kind = TFPLUGIN6__STRING_KIND__MARKDOWN;
        b->attributes = attrs_to_proto(attrs, false, &b->n_attributes);
        if (!b->description || !b->attributes) {
                protobuf_c_message_free_unpacked(&s->base, NULL);
                return NULL;
        }
        return s;
}

static void validate_value(const tf_attr *a, const cty_value *v, const tf_path *path, tf_diags *diags) {
        if (!v || v->null || v->unknown)
                return;
        switch (a->nesting) {
        case TF_NEST_SINGLE:
                tf_schema_validate(a->nested, v, path, diags);
                break;
        case TF_NEST_MAP:
                for (size_t i = 0; i < v->c.n; i++) {
                        char step[160];
                        snprintf(step, sizeof(step), "[%s]", v->c.keys[i]);
                        tf_path p = tf_path_child(path, step);
                        tf_schema_validate(a->nested, v->c.items[i], &p, diags);
                }
                break;
        case TF_NEST_LIST:
                for (size_t i = 0; i < v->c.n; i++) {
                        char step[32];
                        snprintf(step, sizeof(step), "#%zu", i);
                        tf_path p = tf_path_child(path, step);
                        tf_schema_validate(a->nested, v->c.items[i], &p, diags);
                }
                break;
        case TF_NEST_NONE:
                break;
        }
        if (a->validate)
                a->validate(a, v, path, diags);
}

void tf_schema_validate(const tf_attr *attrs, const cty_value *config, const tf_path *path, tf_diags *diags) {
        if (!config || config->null || config->unknown)
                return;
        for (size_t i = 0; attrs[i].name; i++) {
                tf_path p = tf_path_child(path, attrs[i].name);
                validate_value(&attrs[i], cty_object_get(config, attrs[i].name), &p, diags);
        }
}

void tf_schema_null_write_only(const tf_attr *attrs, cty_value *obj) {
        if (!obj || obj->null || obj->unknown)
                return;
        for (size_t i = 0; attrs[i].name; i++) {
                const tf_attr *a = &attrs[i];
                cty_value *v = cty_object_get(obj, a->name);
                if (!v)
                        continue;
                if (a->write_only && !v->null)
                        (void) cty_object_set(obj, a->name, cty_null(v->type));
                else if (a->nesting == TF_NEST_SINGLE)
                        tf_schema_null_write_only(a->nested, v);
        }
}

static void plan_object(const tf_attr *attrs, cty_value *obj) {
        if (!obj || obj->null || obj->unknown)
                return;
        for (size_t i = 0; attrs[i].name; i++) {
                const tf_attr *a = &attrs[i];
                cty_value *v = cty_object_get(obj, a->name);
                if (!v)
                        continue;
                if (a->write_only) {
                        if (!v->null)
                                (void) cty_object_set(obj, a->name, cty_null(v->type));
                } else if ((a->mode == TF_COMPUTED || a->mode == TF_OPTIONAL_COMPUTED) && v->null)
                        /* Null here means no config value and no prior value: known after apply. */
                        (void) cty_object_set(obj, a->name, cty_unknown(v->type));
                else if (a->nesting == TF_NEST_SINGLE)
                        plan_object(a->nested, v);
        }
}

cty_value *tf_schema_plan(const tf_attr *attrs, cty_value *proposed) {
        plan_object(attrs, proposed);
        return proposed;
}

size_t tf_schema_requires_replace(const tf_attr *attrs, const char **ret, size_t max) {
        size_t n = 0;
        for (size_t i = 0; attrs[i].name && n < max; i++)
                if (attrs[i].requires_replace && !attrs[i].write_only)
                        ret[n++] = attrs[i].name;
        return n;
}

const tf_attr *tf_schema_find(const tf_attr *attrs, const char *name) {
        for (size_t i = 0; attrs && attrs[i].name; i++)
                if (streq(attrs[i].name, name))
                        return &attrs[i];
        return NULL;
}

const char *tf_get_string(const cty_value *obj, const char *name) {
        const char *s;
        if (cty_value_get_string(cty_object_get(obj, name), &s, NULL) < 0)
                return NULL;
        return s;
}
