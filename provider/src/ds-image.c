/* SPDX-License-Identifier: Apache-2.0 */
/* constellation_image: finds the node image for a CSP and attestation variant in the image info
 * file of a release, `<cdn>/constellation/v2/ref/<ref>/stream/<stream>/<version>/image/info.json`
 * = {"ref","stream","version","list":[{"csp","attestationVariant","reference","region"}]}
 * (reference constellation.md §1.6). */
#include <jansson.h>
#include <stdio.h>

#include "http/http.h"
#include "image-common.h"
#include "provider.h"
#include "validators.h"

static const tf_attr image_out_attrs[] = {
        { .name = "version", .kind = CTY_STRING, .mode = TF_COMPUTED, .description = "Image version." },
        { .name = "reference", .kind = CTY_STRING, .mode = TF_COMPUTED,
          .description = "CSP-specific reference of the image (AMI, gallery path, image URI, or file name for QEMU)." },
        { .name = "short_path", .kind = CTY_STRING, .mode = TF_COMPUTED,
          .description = "`vX.Y.Z` for releases, `ref/<ref>/stream/<stream>/<version>` otherwise." },
        { .name = "marketplace_image", .kind = CTY_BOOL, .mode = TF_COMPUTED,
          .description = "Whether the reference is a marketplace image." },
        TF_ATTR_END,
};

static const tf_attr image_attrs[] = {
        { .name = "attestation_variant", .kind = CTY_STRING, .mode = TF_REQUIRED,
          .description = "Attestation variant the image is built for.", .validate = tf_validate_one_of,
          .validate_arg = tf_attestation_variants },
        { .name = "csp", .kind = CTY_STRING, .mode = TF_REQUIRED,
          .description = "Cloud service provider: `aws`, `azure`, `gcp`, `openstack`, `stackit` or `qemu`.",
          .validate = tf_validate_one_of, .validate_arg = tf_csps_with_qemu },
        { .name = "version", .kind = CTY_STRING, .mode = TF_OPTIONAL,
          .description = "Image version `vX.Y.Z` (a release) or a short path `ref/<ref>/stream/<stream>/<version>`.",
          .validate = tf_validate_regex,
          .validate_arg = "^(v[0-9]+\\.[0-9]+\\.[0-9]+(-[0-9A-Za-z.-]+)?|ref/[^/]+/stream/[^/]+/[^/]+)$" },
        { .name = "region", .kind = CTY_STRING, .mode = TF_OPTIONAL,
          .description = "Region of the image (required for AWS)." },
        { .name = "marketplace_image", .kind = CTY_BOOL, .mode = TF_OPTIONAL,
          .description = "Use the marketplace image." },
        { .name = "image", .nesting = TF_NEST_SINGLE, .nested = image_out_attrs, .mode = TF_COMPUTED,
          .description = "The image." },
        TF_ATTR_END,
};

const char *const tf_attestation_variants[] = { "aws-sev-snp", "aws-nitro-tpm", "azure-sev-snp", "azure-tdx",
                                                "gcp-sev-es",  "gcp-sev-snp",   "qemu-vtpm",     NULL };
const char *const tf_csps_with_qemu[] = { "aws", "azure", "gcp", "openstack", "stackit", "qemu", NULL };
const char *const tf_csps[] = { "aws", "azure", "gcp", "openstack", "stackit", NULL };

int tf_image_short_path(const char *version, tf_image_path *ret) {
        *ret = (tf_image_path){ 0 };
        if (version[0] == 'v') {
                /* A release: ref "-", stream "stable" (Constellation's versionsapi). */
                snprintf(ret->ref, sizeof(ret->ref), "-");
                snprintf(ret->stream, sizeof(ret->stream), "stable");
                snprintf(ret->version, sizeof(ret->version), "%s", version);
                snprintf(ret->short_path, sizeof(ret->short_path), "%s", version);
                return 0;
        }
        if (sscanf(version, "ref/%63[^/]/stream/%63[^/]/%63s", ret->ref, ret->stream, ret->version) != 3)
                return -EINVAL;
        snprintf(ret->short_path, sizeof(ret->short_path), "%s", version);
        return 0;
}

int tf_image_url(const tf_provider_state *p, const tf_image_path *ip, const char *file, char **ret) {
        return asprintf(ret, "%s/constellation/v2/ref/%s/stream/%s/%s/image/%s", p->cdn_url ?: TF_DEFAULT_CDN_URL,
                        ip->ref, ip->stream, ip->version, file) < 0
                       ? -ENOMEM
                       : 0;
}

/* Constellation's JSON spells CSPs "AWS", "Azure", "GCP", "OpenStack", "QEMU"; compare loosely. */
static bool csp_matches(const char *json_csp, const char *csp) {
        if (!json_csp)
                return false;
        if (strcasecmp(csp, "stackit") == 0)
                return strcasecmp(json_csp, "openstack") == 0 || strcasecmp(json_csp, "stackit") == 0;
        return strcasecmp(json_csp, csp) == 0;
}

static cty_value *read_image(tf_provider_state *p, const cty_value *config, tf_diags *d) {
        const char *csp = tf_get_string(config, "csp"), *variant = tf_get_string(config, "attestation_variant");
        const char *version = tf_get_string(config, "version"), *region = tf_get_string(config, "region");
        bool marketplace = false;
        (void) cty_value_get_bool(cty_object_get(config, "marketplace_image"), &marketplace);
        tf_path version_path = tf_path_child(NULL, "version"), region_path = tf_path_child(NULL, "region");

        if (!version) {
                tf_error(d, &version_path, "Missing image version",
                         "Set version to the image version to use (for example \"v2.25.0\"); this provider has no "
                         "built-in default release.");
                return NULL;
        }
        if (streq(csp, "aws") && !region) {
                tf_error(d, &region_path, "Missing region", "AWS images are regional: set region.");
                return NULL;
        }
        tf_image_path ip;
        if (tf_image_short_path(version, &ip) < 0) {
                tf_error(d, &version_path, "Invalid image version",
                         "Version must be vX.Y.Z or ref/<ref>/stream/<stream>/<version>, got \"%s\".", version);
                return NULL;
        }
        _cleanup_free_ char *url = NULL, *err = NULL;
        _cleanup_free_ uint8_t *body = NULL;
        size_t len;
        if (tf_image_url(p, &ip, "info.json", &url) < 0)
                return NULL;
        http_options ho = { .max_size = 1024 * 1024, .timeout_ms = 30000 };
        int r = http_get(url, &ho, &body, &len, &err);
        if (r < 0) {
                tf_error(d, &version_path, "Cannot fetch image information",
                         "Fetching the image list for version %s failed: %s. Check the provider's cdn_url and the "
                         "version.", version, err ?: strerror(-r));
                return NULL;
        }
        json_error_t jerr;
        _cleanup_(json_decrefp) json_t *info = json_loadb((const char *) body, len, JSON_REJECT_DUPLICATES, &jerr);
        json_t *list = info ? json_object_get(info, "list") : NULL;
        if (!info || !json_is_array(list)) {
                tf_error(d, NULL, "Invalid image information",
                         "%s is not an image info document (expected an object with a \"list\" array)%s%s.", url,
                         info ? "" : ": ", info ? "" : jerr.text);
                return NULL;
        }
        const char *want_version = json_string_value(json_object_get(info, "version"));
        if (want_version && !streq(want_version, ip.version)) {
                tf_error(d, &version_path, "Image information does not match",
                         "%s describes version %s, not the requested %s.", url, want_version, ip.version);
                return NULL;
        }
        const char *reference = NULL;
        size_t i;
        json_t *e;
        json_array_foreach(list, i, e) {
                if (!csp_matches(json_string_value(json_object_get(e, "csp")), csp))
                        continue;
                if (!streq_ptr(json_string_value(json_object_get(e, "attestationVariant")), variant))
                        continue;
                const char *er = json_string_value(json_object_get(e, "region"));
                if (region && er && *er && !streq(er, region))
                        continue;
                reference = json_string_value(json_object_get(e, "reference"));
                if (reference)
                        break;
        }
        if (!reference) {
                tf_error(d, NULL, "Image not found",
                         "%s has no image for csp \"%s\", attestation_variant \"%s\"%s%s%s.", url, csp, variant,
                         region ? ", region \"" : "", region ?: "", region ? "\"" : "");
                return NULL;
        }

        _cleanup_(cty_type_unrefp) cty_type *t = tf_schema_type(image_attrs);
        _cleanup_(cty_type_unrefp) cty_type *it = tf_schema_type(image_out_attrs);
        _cleanup_(cty_value_freep) cty_value *state = cty_value_copy(config);
        cty_value *image = cty_object_new(it);
        if (!state || !image || cty_object_set(image, "version", cty_string_new(ip.version)) < 0 ||
            cty_object_set(image, "reference", cty_string_new(reference)) < 0 ||
            cty_object_set(image, "short_path", cty_string_new(ip.short_path)) < 0 ||
            cty_object_set(image, "marketplace_image", cty_bool_new(marketplace)) < 0 ||
            cty_object_set(state, "image", image) < 0)
                return NULL;
        return TAKE_PTR(state);
}

const tf_resource_ops tf_data_image = {
        .type_name = "constellation_image",
        .attrs = image_attrs,
        .description = "The node image of a Constellation release for a CSP and attestation variant.",
        .read_data = read_image,
};
