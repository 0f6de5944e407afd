/* SPDX-License-Identifier: Apache-2.0 */
/* constellation_attestation: the attestation configuration of a release for a CSP and attestation
 * variant (reference constellation.md §1.5, §5):
 *   1. measurements.json and measurements.json.sig from
 *      <cdn>/constellation/v2/ref/<ref>/stream/<stream>/<version>/image/;
 *   2. the cosign signature over the exact file bytes (§5.2), with the provider's cosign_public_key,
 *      else Constellation's release key for ref "-"/stream "stable", else its development key;
 *   3. the hashedrekord entry for SHA-256 of the file in the Rekor log (index lookup, SET, inclusion
 *      proof, checkpoint, body names our hash and key);
 *   4. the file must be for the requested version/ref/stream; the (csp, variant) entry is taken;
 *   5. SEV-SNP variants: minimum TCB versions from the attestation config API
 *      (<cdn>/constellation/v1/attestation/<variant>/list -> first entry -> <variant>/<entry>, each
 *      with a .sig by the release key), the AMD root key of the product (amd_product) and, on
 *      Azure, the firmware signer.
 *
 * Which AMD root key (ARK): neither the variant nor the attestation config can say. The variants
 * (aws-sev-snp, azure-sev-snp, gcp-sev-snp) name a cloud, not a CPU generation, and each cloud
 * offers SEV-SNP machines of several (AWS m6a/c6a Milan and m7a Genoa; Azure DCasv5 Milan and
 * DCasv6 Genoa; GCP n2d Milan and c3d Genoa); the config API entry holds only the four TCB
 * numbers (Constellation attestationconfigapi.SEVSNPVersion: bootloader, tee, snp, microcode), no
 * product. The product is a property of the machine type, which this data source does not see, so
 * the configuration states it: `amd_product` = "Milan" (default, what Constellation always
 * pins), "Genoa" or "Turin"; the ARK is the built-in, fingerprint-pinned one of that product
 * (lib/snp). A node on another generation fails attestation against it (its VCEK chain ends in
 * another ARK) rather than being accepted.
 *
 * Differences from Constellation's data source, on purpose:
 *  - a Rekor failure (log unreachable, no entry, entry not verifying) is an ERROR; Constellation
 *    only warns. `skip_rekor = true` does not contact the log at all (a warning says so); `insecure = true` skips the
 *    signature and Rekor checks as in Constellation (with a warning).
 *  - azure-tdx is refused with a diagnostic: its defaults (MRSEAM, Intel root key) are not built in
 *    yet.
 *  - the attestation config list (which entry is newest) must be signed too (list.sig), like the
 *    entry: an unsigned list could be swapped to select an older signed entry (a TCB downgrade). */
#include <inttypes.h>
#include <jansson.h>
#include <openssl/sha.h>
#include <stdio.h>

#include "basic/cleanup-openssl.h"
#include "basic/encoding.h"
#include "crypto/cosign.h"
#include "default-keys.h"
#include "http/http.h"
#include "image-common.h"
#include "measurements/measurements.h"
#include "provider.h"
#include "rekor/rekor.h"
#include "snp/snp.h"
#include "validators.h"
#include "x509/x509.h"

#define SIG_MAX_SIZE 4096
#define ATTESTATION_CONFIG_MAX_SIZE (64u * 1024)

/* Constellation's cosign keys and the public-good Rekor key (default-keys.h). */
static const char release_key_pem[] = TF_COSIGN_KEY_RELEASES;
static const char dev_key_pem[] = TF_COSIGN_KEY_DEV;
static const char rekor_key_pem[] = TF_REKOR_PUBLIC_GOOD_KEY;
/* Azure's default accepted firmware signing key digest (Constellation internal/config). */
static const char azure_firmware_key_digest[] =
        "0356215882a825279a85b300b0b742931d113bf7e32dde2e50ffde7ec743ca491ecdd7f336dc28a6e0b2bb57af7a44a3";


static const char *const amd_products[] = { "Milan", "Genoa", "Turin", NULL };

static const tf_attr attestation_attrs[] = {
        { .name = "csp", .kind = CTY_STRING, .mode = TF_REQUIRED, .description = "Cloud service provider.",
          .validate = tf_validate_one_of, .validate_arg = tf_csps_with_qemu },
        { .name = "attestation_variant", .kind = CTY_STRING, .mode = TF_REQUIRED,
          .description = "Attestation variant.", .validate = tf_validate_one_of,
          .validate_arg = tf_attestation_variants },
        { .name = "image", .nesting = TF_NEST_SINGLE, .nested = tf_image_input_attrs, .mode = TF_REQUIRED,
          .description = "The image (from `constellation_image`)." },
        { .name = "maa_url", .kind = CTY_STRING, .mode = TF_OPTIONAL,
          .description = "Microsoft Azure Attestation URL (azure-sev-snp only)." },
        { .name = "insecure", .kind = CTY_BOOL, .mode = TF_OPTIONAL,
          .description = "Skip the signature and Rekor checks of the measurements. Only for development." },
        { .name = "amd_product", .kind = CTY_STRING, .mode = TF_OPTIONAL,
          .description = "AMD EPYC generation of the SEV-SNP nodes, which selects `attestation.amd_root_key`: "
                         "`Milan` (default), `Genoa` or `Turin`. SEV-SNP variants only; neither the variant nor "
                         "the attestation config names it (it depends on the machine type).",
          .validate = tf_validate_one_of, .validate_arg = amd_products },
        { .name = "skip_rekor", .kind = CTY_BOOL, .mode = TF_OPTIONAL,
          .description = "Accept the measurements without a Rekor transparency-log entry: the log is not "
                         "contacted (a warning says so)." },
        /* The cluster's attestation table, all computed here (tf_schema_to_proto forces that). */
        { .name = "attestation", .nesting = TF_NEST_SINGLE, .nested = tf_attestation_attrs_input, .mode = TF_COMPUTED,
          .description = "The attestation configuration, to pass to `constellation_cluster`." },
        TF_ATTR_END,
};

static bool get_bool(const cty_value *config, const char *name) {
        bool b = false;
        (void) cty_value_get_bool(cty_object_get(config, name), &b);
        return b;
}

/* Which key signs this release's files, and how to name it in messages. */
static const char *select_key(const tf_provider_state *p, const tf_image_path *ip, const char **ret_name) {
        if (p->cosign_public_key) {
                *ret_name = "the provider's cosign_public_key";
                return p->cosign_public_key;
        }
        if (streq(ip->ref, "-") && streq(ip->stream, "stable")) {
                *ret_name = "Constellation's release key";
                return release_key_pem;
        }
        *ret_name = "Constellation's development key";
        return dev_key_pem;
}

/* Fetches url and, unless insecure, url.sig, and checks the signature with key_pem. Errors are
 * diagnostics at `path` naming the URL. */
static int fetch_signed(const char *url, size_t max, bool insecure, const char *key_pem, const char *key_name,
                        const tf_path *path, tf_diags *d, uint8_t **ret, size_t *ret_len) {
        _cleanup_free_ char *err = NULL, *sig_url = NULL;
        _cleanup_free_ uint8_t *body = NULL, *sig = NULL;
        size_t len, sig_len;
        http_options ho = { .max_size = max, .timeout_ms = 30000 };
        int r = http_get(url, &ho, &body, &len, &err);
        if (r < 0) {
                tf_error(d, path, "Cannot fetch release file", "Fetching %s failed: %s. Check the provider's cdn_url "
                         "and the image version.", url, err ?: strerror(-r));
                return r;
        }
        if (!insecure) {
                if (asprintf(&sig_url, "%s.sig", url) < 0)
                        return -ENOMEM;
                http_options hs = { .max_size = SIG_MAX_SIZE, .timeout_ms = 30000 };
                r = http_get(sig_url, &hs, &sig, &sig_len, &err);
                if (r < 0) {
                        tf_error(d, path, "Cannot fetch signature",
                                 "Fetching %s failed: %s. Every release file is signed; set insecure = true only "
                                 "for unsigned development images.", sig_url, err ?: strerror(-r));
                        return r;
                }
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
                if ((r = cosign_load_public_key(key_pem, strlen(key_pem), &key)) < 0) {
                        tf_error(d, path, "Invalid cosign public key",
                                 "%s is not an ECDSA P-256 public key in PEM form.", key_name);
                        return r;
                }
                cosign_error ce = COSIGN_OK;
                if ((r = cosign_verify_blob(body, len, (const char *) sig, sig_len, key, &ce)) < 0) {
                        tf_error(d, path, "Measurements not trusted",
                                 "%s is not signed by %s: %s (signature %s).", url, key_name,
                                 cosign_error_to_string(ce), sig_url);
                        return r;
                }
        }
        *ret = TAKE_PTR(body);
        *ret_len = len;
        return 0;
}

/* Step 3: the Rekor transparency log. */
static int check_rekor(const tf_provider_state *p, const uint8_t *file, size_t len, const char *url,
                       const char *key_pem, bool optional, const tf_path *path, tf_diags *d) {
        uint8_t digest[SHA256_DIGEST_LENGTH];
        SHA256(file, len, digest);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *signer = NULL, *log_key = NULL;
        const char *log_pem = p->rekor_public_key ?: rekor_key_pem;
        const char *rekor_url = p->rekor_url ?: TF_DEFAULT_REKOR_URL;
        if (cosign_load_public_key(key_pem, strlen(key_pem), &signer) < 0 ||
            cosign_load_public_key(log_pem, strlen(log_pem), &log_key) < 0) {
                tf_error(d, NULL, "Invalid Rekor public key", "The provider's rekor_public_key is not an ECDSA P-256 "
                         "public key in PEM form.");
                return -EINVAL;
        }
        _cleanup_free_ char *detail = NULL, *hex = hex_encode(digest, sizeof(digest));
        /* skip_rekor: the log is not contacted at all. A lookup whose failure is only a warning
         * would still send every plan's artifact digest (and a DNS query) to the public log, which
         * a local or air-gapped cluster (examples/local, the tests: loopback only) must not do. */
        if (optional) {
                tf_warning(d, path, "Transparency log not checked",
                           "skip_rekor is set: the transparency-log entry of %s (sha256 %s) was not looked up in %s; "
                           "the signature alone vouches for the measurements.",
                           url, hex ?: "?", rekor_url);
                return 0;
        }
        rekor_reason reason = REKOR_OK;
        int r = rekor_lookup_and_verify(rekor_url, digest, signer, log_key, &reason, &detail);
        if (r >= 0)
                return 0;
        /* lib/rekor's detail already starts with the reason. */
        const char *why = detail ?: rekor_reason_to_string(reason);
        tf_error(d, path, "Transparency log check failed",
                 "The transparency-log entry of %s (sha256 %s) could not be verified in %s: %s. Set "
                 "skip_rekor = true to accept the signature alone, or point the provider's rekor_url at a reachable "
                 "log.",
                 url, hex ?: "?", rekor_url, why);
        return r;
}

static bool is_snp(const char *variant) {
        return streq(variant, "aws-sev-snp") || streq(variant, "azure-sev-snp") || streq(variant, "gcp-sev-snp");
}

typedef struct att_tcb {
        int64_t bootloader, tee, snp, microcode;
} att_tcb;

static int json_u8(json_t *o, const char *name, int64_t *ret) {
        json_t *v = json_object_get(o, name);
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 255)
                return -EBADMSG;
        *ret = json_integer_value(v);
        return 0;
}

/* Step 5: the latest TCB versions from the attestation config API (the entry signed by the release
 * key, or the provider's cosign_public_key). */
static int fetch_snp_tcb(const tf_provider_state *p, const char *variant, bool insecure, const tf_path *path,
                         tf_diags *d, att_tcb *ret) {
        const char *cdn = p->cdn_url ?: TF_DEFAULT_CDN_URL;
        const char *key = p->cosign_public_key ?: release_key_pem;
        const char *key_name = p->cosign_public_key ? "the provider's cosign_public_key" : "Constellation's release key";
        _cleanup_free_ char *list_url = NULL, *entry_url = NULL;
        _cleanup_free_ uint8_t *list_body = NULL, *entry_body = NULL;
        size_t len;
        if (asprintf(&list_url, "%s/constellation/v1/attestation/%s/list", cdn, variant) < 0)
                return -ENOMEM;
        /* The list is signed like the entry it names: otherwise a swapped list could select an older
         * signed entry, i.e. lower minimum TCB versions. */
        int r = fetch_signed(list_url, ATTESTATION_CONFIG_MAX_SIZE, insecure, key, key_name, path, d, &list_body, &len);
        if (r < 0)
                return r;
        _cleanup_(json_decrefp) json_t *list = json_loadb((const char *) list_body, len, JSON_REJECT_DUPLICATES, NULL);
        const char *latest = json_string_value(json_array_get(list, 0));
        /* The entry name becomes a URL path segment: plain file names only. */
        if (!latest || !*latest || strchr(latest, '/') || strstr(latest, "..") || strlen(latest) > 128) {
                tf_error(d, path, "Invalid attestation config list",
                         "%s is not a non-empty JSON array of version file names.", list_url);
                return -EBADMSG;
        }
        if (asprintf(&entry_url, "%s/constellation/v1/attestation/%s/%s", cdn, variant, latest) < 0)
                return -ENOMEM;
        r = fetch_signed(entry_url, ATTESTATION_CONFIG_MAX_SIZE, insecure, key, key_name, path, d, &entry_body, &len);
        if (r < 0)
                return r;
        _cleanup_(json_decrefp) json_t *e = json_loadb((const char *) entry_body, len, JSON_REJECT_DUPLICATES, NULL);
        att_tcb t;
        if (!json_is_object(e) || json_u8(e, "bootloader", &t.bootloader) < 0 || json_u8(e, "tee", &t.tee) < 0 ||
            json_u8(e, "snp", &t.snp) < 0 || json_u8(e, "microcode", &t.microcode) < 0) {
                tf_error(d, path, "Invalid attestation config",
                         "%s must be an object with integer fields bootloader, tee, snp and microcode (0..255).",
                         entry_url);
                return -EBADMSG;
        }
        *ret = t;
        return 0;
}

static enum snp_product amd_product_from_name(const char *name) {
        return !name || streq(name, "Milan") ? SNP_PRODUCT_MILAN :
               streq(name, "Genoa")          ? SNP_PRODUCT_GENOA :
               streq(name, "Turin")          ? SNP_PRODUCT_TURIN :
                                               SNP_PRODUCT_UNKNOWN;
}

/* The product's built-in ARK as Constellation's config carries it: a JSON string holding the PEM. */
static char *ark_json(enum snp_product product) {
        _cleanup_(X509_freep) X509 *ark = snp_builtin_ark(product);
        _cleanup_free_ char *pem = NULL;
        if (!ark || x509_to_pem(ark, &pem) < 0)
                return NULL;
        _cleanup_(json_decrefp) json_t *s = json_string(pem);
        return s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
}

static cty_value *measurements_value(const measurements *m) {
        const tf_attr *ma = tf_schema_find(tf_attestation_attrs_input, "measurements");
        _cleanup_(cty_type_unrefp) cty_type *ot = ma ? tf_schema_type(ma->nested) : NULL;
        _cleanup_(cty_type_unrefp) cty_type *mt = ot ? cty_type_map(ot) : NULL;
        _cleanup_(cty_value_freep) cty_value *map = mt ? cty_collection_new(mt) : NULL;
        if (!map)
                return NULL;
        for (size_t i = 0; i < m->n; i++) {
                const measurement *e = &m->items[i];
                char key[16];
                _cleanup_free_ char *hex = hex_encode(e->expected, e->len);
                cty_value *o = cty_object_new(ot);
                snprintf(key, sizeof(key), "%" PRIu32, e->index);
                if (!hex || !o || cty_object_set(o, "expected", cty_string_new(hex)) < 0 ||
                    cty_object_set(o, "warn_only", cty_bool_new(e->warn_only)) < 0 || cty_map_put(map, key, o) < 0) {
                        cty_value_free(o);
                        return NULL;
                }
        }
        return TAKE_PTR(map);
}

static cty_value *azure_signer_value(const char *maa_url) {
        const tf_attr *sa = tf_schema_find(tf_attestation_attrs_input, "azure_firmware_signer_config");
        _cleanup_(cty_type_unrefp) cty_type *st = sa ? tf_schema_type(sa->nested) : NULL;
        _cleanup_(cty_type_unrefp) cty_type *lt = cty_type_list(&cty_string);
        _cleanup_(cty_value_freep) cty_value *s = st ? cty_object_new(st) : NULL;
        cty_value *digests = lt ? cty_collection_new(lt) : NULL;
        if (!s || !digests || cty_collection_append(digests, cty_string_new(azure_firmware_key_digest)) < 0 ||
            cty_object_set(s, "accepted_key_digests", digests) < 0 ||
            cty_object_set(s, "enforcement_policy", cty_string_new("MAAFallback")) < 0 ||
            (maa_url && cty_object_set(s, "maa_url", cty_string_new(maa_url)) < 0))
                return NULL;
        return TAKE_PTR(s);
}

static cty_value *read_attestation(tf_provider_state *p, const cty_value *config, tf_diags *d) {
        const char *csp = tf_get_string(config, "csp"), *variant = tf_get_string(config, "attestation_variant");
        const char *maa_url = tf_get_string(config, "maa_url"), *amd_product = tf_get_string(config, "amd_product");
        const cty_value *image = cty_object_get(config, "image");
        const char *short_path = tf_get_string(image, "short_path") ?: tf_get_string(image, "version");
        bool insecure = get_bool(config, "insecure"), skip_rekor = get_bool(config, "skip_rekor");
        tf_path image_path = tf_path_child(NULL, "image");
        tf_path sp_path = tf_path_child(&image_path, "short_path");
        tf_path variant_path = tf_path_child(NULL, "attestation_variant");
        tf_path insecure_path = tf_path_child(NULL, "insecure"), maa_path = tf_path_child(NULL, "maa_url");
        tf_path product_path = tf_path_child(NULL, "amd_product");
        int r;

        if (!csp || !variant || !short_path) {
                tf_error(d, NULL, "Missing input", "csp, attestation_variant and image.short_path must be known.");
                return NULL;
        }
        if (streq(variant, "azure-tdx")) {
                tf_error(d, &variant_path, "Unsupported attestation variant",
                         "This provider cannot yet fill the TDX defaults (MRSEAM, Intel root key) of azure-tdx; "
                         "set the cluster's attestation attribute by hand for this variant.");
                return NULL;
        }
        if (amd_product && !is_snp(variant)) {
                tf_error(d, &product_path, "amd_product needs an SEV-SNP variant",
                         "amd_product selects the AMD root key of SEV-SNP nodes; attestation variant %s has none. "
                         "Remove amd_product.", variant);
                return NULL;
        }
        if (amd_product_from_name(amd_product) == SNP_PRODUCT_UNKNOWN) {
                tf_error(d, &product_path, "Unknown AMD product",
                         "amd_product must be Milan, Genoa or Turin, got \"%s\".", amd_product);
                return NULL;
        }
        tf_image_path ip;
        if (tf_image_short_path(short_path, &ip) < 0) {
                tf_error(d, &sp_path, "Invalid image short path",
                         "image.short_path must be vX.Y.Z or ref/<ref>/stream/<stream>/<version>, got \"%s\".",
                         short_path);
                return NULL;
        }
        if (insecure)
                tf_warning(d, &insecure_path, "Measurements not verified",
                           "insecure = true: the signature and transparency-log checks of the measurements are "
                           "skipped. Never use this for production clusters.");
        if (maa_url && streq(variant, "azure-sev-snp"))
                tf_warning(d, &maa_path, "MAA policy must be patched",
                           "With maa_url set, the Microsoft Azure Attestation policy of %s must be patched for "
                           "Constellation before the cluster is created.", maa_url);

        /* 1–3: measurements, signature, Rekor. */
        _cleanup_free_ char *url = NULL;
        _cleanup_free_ uint8_t *file = NULL;
        size_t len;
        const char *key_name = NULL, *key_pem = select_key(p, &ip, &key_name);
        if (tf_image_url(p, &ip, "measurements.json", &url) < 0)
                return NULL;
        if (fetch_signed(url, MEASUREMENTS_MAX_FILE, insecure, key_pem, key_name, &sp_path, d, &file, &len) < 0)
                return NULL;
        if (!insecure && check_rekor(p, file, len, url, key_pem, skip_rekor, &sp_path, d) < 0)
                return NULL;

        /* 4: the release file and the entry for (csp, variant). */
        _cleanup_(measurements_release_done) measurements_release rel = { 0 };
        _cleanup_free_ char *perr = NULL;
        if ((r = measurements_release_parse(file, len, &rel, &perr)) < 0) {
                tf_error(d, &sp_path, "Invalid measurements file", "%s is not a measurements release file: %s.", url,
                         perr ?: strerror(-r));
                return NULL;
        }
        if (!streq_ptr(rel.version, ip.version) || !streq_ptr(rel.ref, ip.ref) || !streq_ptr(rel.stream, ip.stream)) {
                tf_error(d, &sp_path, "Measurements are for another image",
                         "%s describes version %s (ref %s, stream %s), not the requested %s (ref %s, stream %s).", url,
                         rel.version ?: "?", rel.ref ?: "?", rel.stream ?: "?", ip.version, ip.ref, ip.stream);
                return NULL;
        }
        const measurements_entry *entry = measurements_release_find(&rel, csp, variant);
        if (!entry) {
                tf_error(d, &variant_path, "No measurements for this variant",
                         "%s has no entry for csp \"%s\" and attestation variant \"%s\".", url, csp, variant);
                return NULL;
        }

        /* 5: SEV-SNP minimums and root key. */
        att_tcb tcb = { 0 };
        _cleanup_free_ char *ark = NULL;
        if (is_snp(variant)) {
                if (fetch_snp_tcb(p, variant, insecure, &variant_path, d, &tcb) < 0)
                        return NULL;
                if (!(ark = ark_json(amd_product_from_name(amd_product)))) {
                        tf_error(d, &product_path, "Internal error", "Cannot encode the built-in %s AMD root key.",
                                 amd_product ?: "Milan");
                        return NULL;
                }
        }

        _cleanup_(cty_type_unrefp) cty_type *at = tf_schema_type(tf_attestation_attrs_input);
        _cleanup_(cty_value_freep) cty_value *state = cty_value_copy(config);
        cty_value *att = at ? cty_object_new(at) : NULL;
        if (!state || !att || cty_object_set(att, "variant", cty_string_new(variant)) < 0 ||
            cty_object_set(att, "bootloader_version", cty_number_int(tcb.bootloader)) < 0 ||
            cty_object_set(att, "tee_version", cty_number_int(tcb.tee)) < 0 ||
            cty_object_set(att, "snp_version", cty_number_int(tcb.snp)) < 0 ||
            cty_object_set(att, "microcode_version", cty_number_int(tcb.microcode)) < 0 ||
            cty_object_set(att, "amd_root_key", cty_string_new(ark ?: "")) < 0 ||
            cty_object_set(att, "measurements", measurements_value(&entry->m)) < 0 ||
            (streq(variant, "azure-sev-snp") &&
             cty_object_set(att, "azure_firmware_signer_config", azure_signer_value(maa_url)) < 0) ||
            cty_object_set(state, "attestation", att) < 0) {
                tf_error(d, NULL, "Internal error", "Cannot build the attestation value (out of memory).");
                return NULL;
        }
        return TAKE_PTR(state);
}

const tf_resource_ops tf_data_attestation = {
        .type_name = "constellation_attestation",
        .attrs = attestation_attrs,
        .description = "The attestation configuration of a node image.",
        .read_data = read_attestation,
};
