/* SPDX-License-Identifier: Apache-2.0 */
#include <stdarg.h>
#include <stdio.h>

#include "diag.h"

static Tfplugin6__AttributePath *path_to_proto(const tf_path *p) {
        Tfplugin6__AttributePath *ap = calloc(1, sizeof(*ap));
        if (!ap)
                return NULL;
        tfplugin6__attribute_path__init(ap);
        ap->steps = calloc(p->n ? p->n : 1, sizeof(*ap->steps));
        if (!ap->steps) {
                free(ap);
                return NULL;
        }
        for (size_t i = 0; i < p->n; i++) {
                Tfplugin6__AttributePath__Step *s = calloc(1, sizeof(*s));
                if (!s) {
                        protobuf_c_message_free_unpacked(&ap->base, NULL);
                        return NULL;
                }
                tfplugin6__attribute_path__step__init(s);
                const char *step = p->steps[i];
                if (step[0] == '[') {
                        size_t len = strlen(step);
                        s->selector_case = TFPLUGIN6__ATTRIBUTE_PATH__STEP__SELECTOR_ELEMENT_KEY_STRING;
                        s->element_key_string = strndup(step + 1, len >= 2 ? len - 2 : 0);
                } else if (step[0] == '#') {
                        s->selector_case = TFPLUGIN6__ATTRIBUTE_PATH__STEP__SELECTOR_ELEMENT_KEY_INT;
                        s->element_key_int = strtoll(step + 1, NULL, 10);
                } else {
                        s->selector_case = TFPLUGIN6__ATTRIBUTE_PATH__STEP__SELECTOR_ATTRIBUTE_NAME;
                        s->attribute_name = strdup(step);
                }
                ap->steps[ap->n_steps++] = s;
                if ((s->selector_case == TFPLUGIN6__ATTRIBUTE_PATH__STEP__SELECTOR_ELEMENT_KEY_STRING &&
                     !s->element_key_string) ||
                    (s->selector_case == TFPLUGIN6__ATTRIBUTE_PATH__STEP__SELECTOR_ATTRIBUTE_NAME && !s->attribute_name)) {
                        protobuf_c_message_free_unpacked(&ap->base, NULL);
                        return NULL;
                }
        }
        return ap;
}

void tf_path_format(const tf_path *p, char *buf, size_t size) {
        size_t used = 0;
        buf[0] = 0;
        for (size_t i = 0; p && i < p->n && used < size; i++) {
                const char *s = p->steps[i];
                int n;
                if (s[0] == '[')
                        n = snprintf(buf + used, size - used, "[\"%.*s\"]", (int) strlen(s) - 2, s + 1);
                else if (s[0] == '#')
                        n = snprintf(buf + used, size - used, "[%s]", s + 1);
                else
                        n = snprintf(buf + used, size - used, "%s%s", i ? "." : "", s);
                if (n < 0)
                        break;
                used += (size_t) n;
        }
}

void tf_diags_add(tf_diags *d, bool error, const tf_path *path, const char *summary, const char *detail_fmt, ...) {
        Tfplugin6__Diagnostic **items = realloc(d->items, (d->n + 1) * sizeof(*items));
        Tfplugin6__Diagnostic *diag = items ? calloc(1, sizeof(*diag)) : NULL;
        if (items)
                d->items = items;
        if (!diag) {
                d->oom = d->has_error = true;
                return;
        }
        tfplugin6__diagnostic__init(diag);
        diag->severity = error ? TFPLUGIN6__DIAGNOSTIC__SEVERITY__ERROR : TFPLUGIN6__DIAGNOSTIC__SEVERITY__WARNING;
        diag->summary = strdup(summary);
        va_list ap;
        va_start(ap, detail_fmt);
        if (vasprintf(&diag->detail, detail_fmt, ap) < 0)
                diag->detail = NULL;
        va_end(ap);
        if (path && path->n > 0 && !(diag->attribute = path_to_proto(path)))
                d->oom = true;
        if (!diag->summary || !diag->detail)
                d->oom = true;
        d->items[d->n++] = diag;
        if (error)
                d->has_error = true;
}

void tf_diags_done(tf_diags *d) {
        for (size_t i = 0; i < d->n; i++)
                protobuf_c_message_free_unpacked(&d->items[i]->base, NULL);
        free(d->items);
        *d = (tf_diags){ 0 };
}
