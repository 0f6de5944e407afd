/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-image publish: measure an image (or UKI) and write a release directory laid out
 * like Constellation's CDN (reference constellation.md §5.1, §8):
 *   <out>/constellation/v2/ref/<ref>/stream/<stream>/<version>/image/
 *     info.json              {"ref","stream","version","list":[{csp,attestationVariant,reference,region}]}
 *     measurements.json      {"version","ref","stream","list":[{csp,attestationVariant,measurements}]}
 *     measurements.json.sig  cosign blob signature (lib/crypto)
 * Publishing several variants into the same version merges the entries (replacing an entry with
 * the same csp + variant [+ region]). The provider reads it with cdn_url = "file://<out>". */
#include <fcntl.h>
#include <stdio.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "basic/cleanup-openssl.h"
#include "basic/fileio.h"
#include "commands.h"
#include "measurements/measurements.h"

#define RELEASE_FILE_MAX (1024 * 1024)

int image_sign_file(const char *key_path, const uint8_t *blob, size_t len, const char *sig_path);

/* Constellation's spelling in measurements.json (cloudprovider.Provider.String()). */
static const struct {
        const char *lower, *name;
} csps[] = { { "aws", "AWS" }, { "azure", "Azure" }, { "gcp", "GCP" }, { "openstack", "OpenStack" }, { "qemu", "QEMU" } };

/* A path component we create: no separators, no dot-dot, a conservative alphabet. */
static bool safe_component(const char *s) {
        if (isempty(s) || streq(s, ".") || streq(s, "..") || strlen(s) > 128)
                return false;
        for (const char *p = s; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                      *p == '-' || *p == '.' || *p == '_' || *p == '+'))
                        return false;
        return true;
}

static int mkdir_p(const char *path) {
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = 0;
                if (mkdir(p, 0755) < 0 && errno != EEXIST)
                        return -errno;
                *s = '/';
        }
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

static int run_sbsign(const char *key, const char *cert, const char *in, const char *out) {
        pid_t pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                /* keep stdout for our own result line */
                if (dup2(STDERR_FILENO, STDOUT_FILENO) < 0)
                        _exit(127);
                execlp("sbsign", "sbsign", "--key", key, "--cert", cert, "--output", out, in, (char *) NULL);
                _exit(127);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/* Streams the image (disk images are GiBs) into a temporary file next to `to`, then renames. */
static int copy_file(const char *from, const char *to) {
        _cleanup_close_ int in = open(from, O_RDONLY | O_CLOEXEC);
        if (in < 0)
                return -errno;
        _cleanup_free_ char *tmp = NULL;
        if (asprintf(&tmp, "%s.tmpXXXXXX", to) < 0)
                return -ENOMEM;
        _cleanup_close_ int out = mkostemp(tmp, O_CLOEXEC);
        if (out < 0)
                return -errno;
        _cleanup_free_ uint8_t *buf = malloc(1 << 20);
        int r = buf ? 0 : -ENOMEM;
        while (r == 0) {
                ssize_t n = read(in, buf, 1 << 20);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        r = -errno;
                else if (n == 0)
                        break;
                else
                        r = loop_write(out, buf, (size_t) n);
        }
        if (r == 0 && (fchmod(out, 0644) < 0 || fsync(out) < 0 || rename(tmp, to) < 0))
                r = -errno;
        if (r < 0)
                (void) unlink(tmp);
        return r;
}

static void publish_help(FILE *f) {
        fputs("Usage: constellation-image publish --image FILE --version vX.Y.Z --csp CSP --variant VARIANT\n"
              "                                   --key cosign.key --out DIR [OPTIONS] [MEASURE OPTIONS]\n"
              "  --ref REF            release ref (default \"-\")\n"
              "  --stream STREAM      stream (default \"stable\")\n"
              "  --reference STRING   image reference in info.json (default: the image's file name)\n"
              "  --region REGION      region in info.json (default empty)\n"
              "  --copy-image         copy the (signed) image into the release directory\n"
              "  --sbsign-key K --sbsign-cert C   sign a UKI for UEFI Secure Boot first; PCR 4 is predicted\n"
              "                       from the signed UKI, which is written as <name>.signed.efi\n"
              "CSP: aws, azure, gcp, openstack, qemu. MEASURE OPTIONS as for `measure` (--pcrphase, ...).\n",
              f);
}

int image_cmd_publish(int argc, char **argv) {
        pcr_uki_options opts = { 0 };
        const char *image = NULL, *version = NULL, *ref = "-", *stream = "stable", *csp_arg = NULL, *variant = NULL;
        const char *key = NULL, *out = NULL, *reference = NULL, *region = "", *sb_key = NULL, *sb_cert = NULL;
        bool copy = false;
        for (int i = 1; i < argc; i++) {
                int r = image_parse_measure_option(argc, argv, &i, &opts);
                if (r < 0)
                        return IMAGE_EXIT_USAGE;
                if (r > 0)
                        continue;
                const char *a = argv[i];
                if (streq(a, "--help") || streq(a, "-h")) {
                        publish_help(stdout);
                        return 0;
                }
                if (streq(a, "--copy-image")) {
                        copy = true;
                        continue;
                }
                static const char *const valued[] = { "--image", "--version", "--ref", "--stream", "--csp", "--variant",
                                                      "--key", "--out", "--reference", "--region", "--sbsign-key",
                                                      "--sbsign-cert" };
                const char **dst[] = { &image, &version, &ref, &stream, &csp_arg, &variant,
                                       &key, &out, &reference, &region, &sb_key, &sb_cert };
                bool found = false;
                for (size_t k = 0; k < ELEMENTSOF(valued); k++)
                        if (streq(a, valued[k])) {
                                if (i + 1 >= argc) {
                                        fprintf(stderr, "%s needs a value\n", a);
                                        return IMAGE_EXIT_USAGE;
                                }
                                *dst[k] = argv[++i];
                                found = true;
                        }
                if (!found) {
                        fprintf(stderr, "publish: unknown argument \"%s\"\n", a);
                        publish_help(stderr);
                        return IMAGE_EXIT_USAGE;
                }
        }
        if (!image || !version || !csp_arg || !variant || !key || !out) {
                fprintf(stderr, "publish: --image, --version, --csp, --variant, --key and --out are required\n");
                publish_help(stderr);
                return IMAGE_EXIT_USAGE;
        }
        const char *csp_name = NULL, *csp_lower = NULL;
        for (size_t k = 0; k < ELEMENTSOF(csps); k++)
                if (strcasecmp(csp_arg, csps[k].lower) == 0) {
                        csp_name = csps[k].name;
                        csp_lower = csps[k].lower;
                }
        if (!csp_name) {
                fprintf(stderr, "--csp: \"%s\" is not one of aws, azure, gcp, openstack, qemu\n", csp_arg);
                return IMAGE_EXIT_USAGE;
        }
        if (version[0] != 'v' || !safe_component(version)) {
                fprintf(stderr, "--version: \"%s\" is not a version like v2.16.0\n", version);
                return IMAGE_EXIT_USAGE;
        }
        if (!safe_component(ref) || !safe_component(stream) || !safe_component(variant)) {
                fprintf(stderr, "--ref, --stream and --variant must be single path components of [A-Za-z0-9._+-]\n");
                return IMAGE_EXIT_USAGE;
        }
        if (!sb_key != !sb_cert) {
                fprintf(stderr, "--sbsign-key and --sbsign-cert go together\n");
                return IMAGE_EXIT_USAGE;
        }

        _cleanup_free_ char *dir = NULL;
        if (asprintf(&dir, "%s/constellation/v2/ref/%s/stream/%s/%s/image", out, ref, stream, version) < 0)
                return IMAGE_EXIT_IO;
        int r = mkdir_p(dir);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", dir, strerror(-r));
                return IMAGE_EXIT_IO;
        }

        /* The file that is measured and published: the image, or the Secure Boot-signed UKI. */
        const char *base = strrchr(image, '/') ? strrchr(image, '/') + 1 : image;
        _cleanup_free_ char *published = NULL, *published_name = NULL;
        if (sb_key) {
                _cleanup_close_ int fd = open(image, O_RDONLY | O_CLOEXEC);
                uint8_t m[2] = { 0 };
                if (fd < 0 || pread(fd, m, 2, 0) != 2 || m[0] != 'M' || m[1] != 'Z') {
                        fprintf(stderr, "%s: --sbsign-key needs a UKI (PE file), not a disk image\n", image);
                        return IMAGE_EXIT_USAGE;
                }
                _cleanup_free_ char *stem = strndup(base, strcspn(base, "."));
                if (!stem || asprintf(&published_name, "%s.signed.efi", stem) < 0 ||
                    asprintf(&published, "%s/%s", dir, published_name) < 0)
                        return IMAGE_EXIT_IO;
                r = run_sbsign(sb_key, sb_cert, image, published);
                if (r < 0) {
                        fprintf(stderr, "%s: sbsign with %s / %s failed\n", image, sb_key, sb_cert);
                        return IMAGE_EXIT_IO;
                }
        } else {
                published_name = strdup(base);
                if (!published_name)
                        return IMAGE_EXIT_IO;
                if (copy) {
                        if (asprintf(&published, "%s/%s", dir, published_name) < 0)
                                return IMAGE_EXIT_IO;
                        r = copy_file(image, published);
                        if (r < 0) {
                                fprintf(stderr, "%s: copying to %s: %s\n", image, published, strerror(-r));
                                return IMAGE_EXIT_IO;
                        }
                }
        }
        const char *measured = published ? published : image;

        _cleanup_(pcr_log_freep) pcr_log *log = NULL;
        int rc = image_predict(measured, &opts, &log);
        if (rc != 0)
                return rc;
        measurements m = { 0 };
        for (size_t k = 0; k < ELEMENTSOF(pcr_predicted_set); k++) {
                r = measurements_set(&m, pcr_predicted_set[k], log->pcr[pcr_predicted_set[k]], PCR_DIGEST_SIZE, false);
                if (r < 0)
                        return IMAGE_EXIT_IO;
        }

        /* measurements.json: merge into an existing release of the same version. */
        _cleanup_free_ char *mpath = NULL, *spath = NULL, *ipath = NULL;
        if (asprintf(&mpath, "%s/measurements.json", dir) < 0 || asprintf(&spath, "%s/measurements.json.sig", dir) < 0 ||
            asprintf(&ipath, "%s/info.json", dir) < 0)
                return IMAGE_EXIT_IO;
        measurements_release rel = { 0 };
        _cleanup_free_ uint8_t *old = NULL;
        size_t old_len = 0;
        r = read_full_file(mpath, RELEASE_FILE_MAX, &old, &old_len);
        if (r >= 0) {
                _cleanup_free_ char *err = NULL;
                r = measurements_release_parse(old, old_len, &rel, &err);
                if (r < 0) {
                        fprintf(stderr, "%s: existing release file does not parse: %s\n", mpath, err ? err : strerror(-r));
                        return IMAGE_EXIT_REJECTED;
                }
                if (!streq_ptr(rel.version, version) || !streq_ptr(rel.ref, ref) || !streq_ptr(rel.stream, stream)) {
                        fprintf(stderr, "%s: existing release is %s/%s/%s, not %s/%s/%s\n", mpath, rel.ref, rel.stream,
                                rel.version, ref, stream, version);
                        measurements_release_done(&rel);
                        return IMAGE_EXIT_REJECTED;
                }
        } else if (r == -ENOENT) {
                rel.version = strdup(version);
                rel.ref = strdup(ref);
                rel.stream = strdup(stream);
                if (!rel.version || !rel.ref || !rel.stream) {
                        measurements_release_done(&rel);
                        return IMAGE_EXIT_IO;
                }
        } else {
                fprintf(stderr, "%s: %s\n", mpath, strerror(-r));
                return IMAGE_EXIT_IO;
        }
        r = measurements_release_put(&rel, csp_name, variant, &m);
        _cleanup_free_ char *mjson = r >= 0 ? measurements_release_to_json(&rel) : NULL;
        measurements_release_done(&rel);
        if (!mjson)
                return IMAGE_EXIT_IO;
        r = write_file_atomic(mpath, mjson, strlen(mjson), 0644);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", mpath, strerror(-r));
                return IMAGE_EXIT_IO;
        }
        rc = image_sign_file(key, (const uint8_t *) mjson, strlen(mjson), spath);
        if (rc != 0)
                return rc;

        /* info.json: same merge rule. */
        json_auto_t *info = NULL;
        _cleanup_free_ uint8_t *ibuf = NULL;
        size_t ilen = 0;
        r = read_full_file(ipath, RELEASE_FILE_MAX, &ibuf, &ilen);
        if (r >= 0) {
                json_error_t jerr;
                info = json_loadb((const char *) ibuf, ilen, 0, &jerr);
                if (!info || !json_is_array(json_object_get(info, "list"))) {
                        fprintf(stderr, "%s: existing image info does not parse: %s\n", ipath, info ? "no list" : jerr.text);
                        return IMAGE_EXIT_REJECTED;
                }
        } else if (r == -ENOENT) {
                info = json_pack("{s:s,s:s,s:s,s:[]}", "ref", ref, "stream", stream, "version", version, "list");
                if (!info)
                        return IMAGE_EXIT_IO;
        } else {
                fprintf(stderr, "%s: %s\n", ipath, strerror(-r));
                return IMAGE_EXIT_IO;
        }
        json_t *list = json_object_get(info, "list");
        json_t *entry = json_pack("{s:s,s:s,s:s,s:s}", "csp", csp_lower, "attestationVariant", variant, "reference",
                                  reference ? reference : published_name, "region", region);
        if (!entry)
                return IMAGE_EXIT_IO;
        size_t idx;
        json_t *e;
        bool replaced = false;
        json_array_foreach(list, idx, e) {
                if (strcasecmp(json_string_value(json_object_get(e, "csp")) ?: "", csp_lower) == 0 &&
                    streq_ptr(json_string_value(json_object_get(e, "attestationVariant")), variant) &&
                    streq(json_string_value(json_object_get(e, "region")) ?: "", region)) {
                        if (json_array_set_new(list, idx, entry) < 0)
                                return IMAGE_EXIT_IO;
                        replaced = true;
                        break;
                }
        }
        if (!replaced && json_array_append_new(list, entry) < 0)
                return IMAGE_EXIT_IO;
        _cleanup_free_ char *ijson = json_dumps(info, JSON_INDENT(2));
        if (!ijson)
                return IMAGE_EXIT_IO;
        r = write_file_atomic(ipath, ijson, strlen(ijson), 0644);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", ipath, strerror(-r));
                return IMAGE_EXIT_IO;
        }
        printf("%s\n", dir);
        return 0;
}
