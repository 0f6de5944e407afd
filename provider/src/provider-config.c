/* SPDX-License-Identifier: Apache-2.0 */
/* Provider configuration. Constellation's provider has no attributes; ours adds three optional
 * ones so that images and measurements can come from a self-hosted or local (file://) CDN and be
 * checked against the user's own signing key and Rekor. */
#include "basic/log.h"
#include "provider.h"
#include "validators.h"

const tf_attr tf_provider_attrs[] = {
        { .name = "cdn_url", .kind = CTY_STRING, .mode = TF_OPTIONAL,
          .description = "Base URL of the CDN that serves images and measurements, in Constellation's layout "
                         "(`constellation/v2/ref/<ref>/stream/<stream>/<version>/image/`). `https://`, `http://` "
                         "and `file://` URLs work. Default: `" TF_DEFAULT_CDN_URL "`.",
          .validate = tf_validate_regex, .validate_arg = "^(https?|file)://[^[:space:]]+$" },
        { .name = "cosign_public_key", .kind = CTY_STRING, .mode = TF_OPTIONAL,
          .description = "PEM public key (ECDSA P-256) that signs `measurements.json`. Default: Constellation's "
                         "release key for release images, its development key otherwise.",
          .validate = tf_validate_regex, .validate_arg = "-----BEGIN PUBLIC KEY-----" },
        { .name = "rekor_url", .kind = CTY_STRING, .mode = TF_OPTIONAL,
          .description = "Rekor transparency log to check measurement signatures against. Default: `"
                         TF_DEFAULT_REKOR_URL "`.",
          .validate = tf_validate_regex, .validate_arg = "^(https?|file)://[^[:space:]]+$" },
        { .name = "rekor_public_key", .kind = CTY_STRING, .mode = TF_OPTIONAL,
          .description = "PEM public key of the Rekor log at `rekor_url`. Default: the public-good Rekor key.",
          .validate = tf_validate_regex, .validate_arg = "-----BEGIN PUBLIC KEY-----" },
        TF_ATTR_END,
};

static void set_string(char **dst, const char *value, const char *fallback) {
        free(*dst);
        *dst = value ? strdup(value) : fallback ? strdup(fallback) : NULL;
}

void tf_provider_configure(tf_provider_state *p, const cty_value *config, tf_diags *diags) {
        set_string(&p->cdn_url, tf_get_string(config, "cdn_url"), TF_DEFAULT_CDN_URL);
        set_string(&p->cosign_public_key, tf_get_string(config, "cosign_public_key"), NULL);
        set_string(&p->rekor_url, tf_get_string(config, "rekor_url"), TF_DEFAULT_REKOR_URL);
        set_string(&p->rekor_public_key, tf_get_string(config, "rekor_public_key"), NULL);
        /* A trailing slash would double up when joining paths. */
        size_t n = p->cdn_url ? strlen(p->cdn_url) : 0;
        while (n > 0 && p->cdn_url[n - 1] == '/')
                p->cdn_url[--n] = 0;
        p->configured = true;
        log_debug("provider configured: cdn_url=%s rekor_url=%s", p->cdn_url, p->rekor_url);
}

void tf_provider_state_done(tf_provider_state *p) {
        free(p->cdn_url);
        free(p->cosign_public_key);
        free(p->rekor_url);
        free(p->rekor_public_key);
        *p = (tf_provider_state){ 0 };
}
