/* SPDX-License-Identifier: Apache-2.0 */
/* Prints the schema reference of a resource, data source or the provider as Markdown in the
 * Terraform registry's style, from the same attribute tables the provider serves. docs/ files
 * keep hand-written text above the marker line and this output below it; ctest checks that they
 * are current. Usage: gen-docs provider|resource NAME|data-source NAME */
#include <stdio.h>

#include "provider.h"

static const char *type_name(const tf_attr *a) {
        switch (a->nesting) {
        case TF_NEST_SINGLE:
                return "Attributes";
        case TF_NEST_LIST:
                return "Attributes List";
        case TF_NEST_MAP:
                return "Attributes Map";
        case TF_NEST_NONE:
                break;
        }
        switch (a->kind) {
        case CTY_STRING:
                return "String";
        case CTY_NUMBER:
                return "Number";
        case CTY_BOOL:
                return "Boolean";
        case CTY_LIST:
                return a->elem_kind == CTY_STRING ? "List of String" : "List";
        case CTY_MAP:
                return "Map of String";
        case CTY_SET:
                return "Set of String";
        default:
                return "Dynamic";
        }
}

static void anchor(char *buf, size_t size, const char *prefix, const char *name) {
        snprintf(buf, size, "%s%s", prefix, name);
        for (char *p = buf; *p; p++)
                if (*p == '.')
                        *p = '-';
}

static void print_group(const tf_attr *attrs, const char *path, const char *title, tf_mode m1, tf_mode m2,
                        bool read_only) {
        bool any = false;
        for (size_t i = 0; attrs[i].name; i++) {
                const tf_attr *a = &attrs[i];
                tf_mode mode = read_only ? TF_COMPUTED : a->mode;
                if (mode != m1 && mode != m2)
                        continue;
                if (!any)
                        printf("\n%s\n\n", title);
                any = true;
                char full[256], id[300];
                snprintf(full, sizeof(full), "%s%s%s", path, *path ? "." : "", a->name);
                anchor(id, sizeof(id), "nestedatt--", full);
                printf("- `%s` (%s%s%s%s) %s%s%s%s\n", a->name, type_name(a), a->sensitive ? ", Sensitive" : "",
                       a->write_only ? ", Write-only" : "", a->requires_replace ? ", Forces replacement" : "",
                       a->description ? a->description : "", a->nesting != TF_NEST_NONE ? " (see [below for nested schema](#" : "",
                       a->nesting != TF_NEST_NONE ? id : "", a->nesting != TF_NEST_NONE ? "))" : "");
        }
}

static void print_attrs(const tf_attr *attrs, const char *path, bool read_only) {
        print_group(attrs, path, "### Required", TF_REQUIRED, TF_REQUIRED, read_only);
        print_group(attrs, path, "### Optional", TF_OPTIONAL, TF_OPTIONAL_COMPUTED, read_only);
        print_group(attrs, path, "### Read-Only", TF_COMPUTED, TF_COMPUTED, read_only);
        for (size_t i = 0; attrs[i].name; i++) {
                const tf_attr *a = &attrs[i];
                if (a->nesting == TF_NEST_NONE)
                        continue;
                char full[256], id[300];
                snprintf(full, sizeof(full), "%s%s%s", path, *path ? "." : "", a->name);
                anchor(id, sizeof(id), "nestedatt--", full);
                printf("\n<a id=\"%s\"></a>\n### Nested Schema for `%s`\n", id, full);
                print_attrs(a->nested, full, read_only || a->mode == TF_COMPUTED);
        }
}

int main(int argc, char **argv) {
        if (argc >= 2 && streq(argv[1], "provider")) {
                printf("## Schema\n");
                print_attrs(tf_provider_attrs, "", false);
                return 0;
        }
        if (argc != 3) {
                fprintf(stderr, "usage: %s provider|resource NAME|data-source NAME\n", argv[0]);
                return 2;
        }
        const tf_resource_ops *const *list = streq(argv[1], "resource") ? tf_resources : tf_data_sources;
        for (size_t i = 0; list[i]; i++)
                if (streq(list[i]->type_name, argv[2])) {
                        printf("## Schema\n");
                        print_attrs(list[i]->attrs, "", false);
                        return 0;
                }
        fprintf(stderr, "%s: no %s named %s\n", argv[0], argv[1], argv[2]);
        return 1;
}
