/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-image measure [OPTIONS] FILE: Constellation's measurements JSON plus the
 * simulated event log, from a UKI or a raw GPT disk image (reference constellation.md §5.3). */
#include <fcntl.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "basic/fileio.h"
#include "commands.h"
#include "pcr/disk.h"

#define UKI_PATH_IN_ESP "EFI/BOOT/BOOTX64.EFI"
/* systemd 252 units: systemd-pcrphase-initrd.service (enter-initrd, leave-initrd),
 * systemd-pcrphase-sysinit.service (sysinit), systemd-pcrphase.service (ready). */
#define PCRPHASE_DEFAULT "enter-initrd:leave-initrd:sysinit:ready"

/* Where the firmware's removable-media default loader lives (UEFI 2.10 §3.5.1.1); --esp-path
 * picks another file (e.g. EFI/Linux/<name>.efi behind systemd-boot). */
static const char *esp_path = UKI_PATH_IN_ESP;

void image_uki_done(image_uki *uki) {
        if (!uki)
                return;
        if (uki->map_len > 0)
                (void) munmap(uki->data, uki->map_len);
        else
                free(uki->data);
        *uki = (image_uki){ 0 };
}

/* Maps the whole UKI file read-only, its pages populated up front (one call into the kernel
 * instead of a fault per 64 KiB while two threads hash it). */
static int map_uki(int fd, const char *path, image_uki *ret) {
        struct stat st;
        if (fstat(fd, &st) < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return IMAGE_EXIT_IO;
        }
        if (!S_ISREG(st.st_mode)) {
                fprintf(stderr, "%s: not a regular file\n", path);
                return IMAGE_EXIT_IO;
        }
        if ((uint64_t) st.st_size > PCR_UKI_MAX_SIZE) {
                fprintf(stderr, "%s: UKI larger than 1 GiB\n", path);
                return IMAGE_EXIT_IO;
        }
        size_t len = (size_t) st.st_size;
        void *p = mmap(NULL, len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (p == MAP_FAILED) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return IMAGE_EXIT_IO;
        }
        *ret = (image_uki){ .data = p, .len = len, .map_len = len };
        return 0;
}

int image_load_uki(const char *path, image_uki *ret) {
        _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return IMAGE_EXIT_IO;
        }
        uint8_t magic[2] = { 0 };
        ssize_t n = pread(fd, magic, sizeof(magic), 0);
        if (n < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return IMAGE_EXIT_IO;
        }
        if (n == 2 && magic[0] == 'M' && magic[1] == 'Z')
                return map_uki(fd, path, ret);
        gpt_source src;
        int r = gpt_source_fd(&src, fd);
        if (r < 0) {
                fprintf(stderr, "%s: not a regular file: %s\n", path, strerror(-r));
                return IMAGE_EXIT_IO;
        }
        const char *reason = NULL;
        image_uki u = { 0 };
        r = gpt_read_esp_file(&src, esp_path, PCR_UKI_MAX_SIZE, &u.data, &u.len, &reason);
        if (r < 0) {
                fprintf(stderr, "%s: neither a UKI nor a disk image with %s in its ESP: %s\n", path, esp_path,
                        reason ? reason : strerror(-r));
                return r == -EIO ? IMAGE_EXIT_IO : IMAGE_EXIT_REJECTED;
        }
        *ret = u;
        return 0;
}

int image_parse_measure_option(int argc, char **argv, int *i, pcr_uki_options *opts) {
        const char *a = argv[*i];
        if (streq(a, "--pcrphase")) {
                opts->pcrphase = PCRPHASE_DEFAULT;
                return 1;
        }
        if (strncmp(a, "--pcrphase=", 11) == 0) {
                opts->pcrphase = a + 11;
                return 1;
        }
        if (streq(a, "--secure-boot")) {
                opts->secure_boot = true;
                return 1;
        }
        if (streq(a, "--no-kernel-cmdline-pcr9")) {
                opts->no_kernel_cmdline_measurement = true;
                return 1;
        }
        if (streq(a, "--loader-cmdline") || streq(a, "--stub-version") || streq(a, "--esp-path")) {
                if (*i + 1 >= argc) {
                        fprintf(stderr, "%s needs a value\n", a);
                        return -EINVAL;
                }
                const char *v = argv[++*i];
                if (streq(a, "--loader-cmdline"))
                        opts->loader_cmdline = v;
                else if (streq(a, "--esp-path"))
                        esp_path = v;
                else {
                        char *end = NULL;
                        unsigned long x = strtoul(v, &end, 10);
                        if (!*v || *end || x < 252 || x > 999) {
                                fprintf(stderr, "--stub-version: expected a systemd version >= 252, got \"%s\"\n", v);
                                return -EINVAL;
                        }
                        opts->stub_version = (unsigned) x;
                }
                return 1;
        }
        return 0;
}

int image_predict(const char *path, const pcr_uki_options *opts, pcr_log **ret) {
        _cleanup_(image_uki_done) image_uki uki = { 0 };
        int rc = image_load_uki(path, &uki);
        if (rc != 0)
                return rc;
        const char *reason = NULL;
        int r = pcr_predict_uki(uki.data, uki.len, opts, ret, NULL, &reason);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", path, reason ? reason : strerror(-r));
                return r == -EBADMSG || r == -EINVAL ? IMAGE_EXIT_REJECTED : IMAGE_EXIT_IO;
        }
        return 0;
}

static void measure_help(FILE *f) {
        fputs("Usage: constellation-image measure [OPTIONS] FILE\n"
              "FILE is a UKI (PE) or a raw GPT disk image whose ESP holds " UKI_PATH_IN_ESP ".\n"
              "Prints {\"measurements\":{...},\"eventlog\":[...]} to stdout.\n\n"
              "  --pcrphase[=P1:P2:...]    systemd-pcrphase extends PCR 11 (default phases " PCRPHASE_DEFAULT ")\n"
              "  --stub-version N          systemd-stub version (252 default; >=254 also measures .uname, .sbat)\n"
              "  --loader-cmdline STRING   a boot loader passes this command line (measured into PCR 12)\n"
              "  --secure-boot             Secure Boot on: the stub ignores a loader command line if .cmdline exists\n"
              "  --esp-path PATH           file to read from a disk image's ESP (default " UKI_PATH_IN_ESP ")\n"
              "  --no-kernel-cmdline-pcr9  the kernel's EFI stub does not measure its command line into PCR 9\n"
              "  -o, --output FILE         also write {\"measurements\":{...}} to FILE\n"
              "  --measurements-only       print only {\"measurements\":{...}}\n",
              f);
}

int image_cmd_measure(int argc, char **argv) {
        pcr_uki_options opts = { 0 };
        const char *file = NULL, *output = NULL;
        bool only = false;
        for (int i = 1; i < argc; i++) {
                int r = image_parse_measure_option(argc, argv, &i, &opts);
                if (r < 0)
                        return IMAGE_EXIT_USAGE;
                if (r > 0)
                        continue;
                if (streq(argv[i], "--help") || streq(argv[i], "-h")) {
                        measure_help(stdout);
                        return 0;
                } else if (streq(argv[i], "--measurements-only"))
                        only = true;
                else if (streq(argv[i], "--json"))
                        continue; /* JSON is the only output format; accepted for scripts that ask for it */
                else if (streq(argv[i], "-o") || streq(argv[i], "--output")) {
                        if (i + 1 >= argc) {
                                fprintf(stderr, "%s needs a value\n", argv[i]);
                                return IMAGE_EXIT_USAGE;
                        }
                        output = argv[++i];
                } else if (argv[i][0] == '-' && argv[i][1]) {
                        fprintf(stderr, "measure: unknown option \"%s\"\n", argv[i]);
                        measure_help(stderr);
                        return IMAGE_EXIT_USAGE;
                } else if (file) {
                        fprintf(stderr, "measure: more than one FILE\n");
                        return IMAGE_EXIT_USAGE;
                } else
                        file = argv[i];
        }
        if (!file) {
                measure_help(stderr);
                return IMAGE_EXIT_USAGE;
        }

        _cleanup_(pcr_log_freep) pcr_log *log = NULL;
        int rc = image_predict(file, &opts, &log);
        if (rc != 0)
                return rc;
        json_auto_t *j = pcr_log_to_json(log);
        if (!j)
                return IMAGE_EXIT_IO;
        if (only)
                json_object_del(j, "eventlog");
        /* JSON_SORT_KEYS orders the PCR keys as Go's encoding/json does ("11" < "4"). */
        _cleanup_free_ char *s = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
        if (!s)
                return IMAGE_EXIT_IO;
        if (output) {
                json_auto_t *m = json_pack("{s:O}", "measurements", json_object_get(j, "measurements"));
                _cleanup_free_ char *ms = m ? json_dumps(m, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
                if (!ms)
                        return IMAGE_EXIT_IO;
                size_t l = strlen(ms);
                ms[l] = '\n';
                int r = write_file_atomic(output, ms, l + 1, 0644);
                ms[l] = 0;
                if (r < 0) {
                        fprintf(stderr, "%s: %s\n", output, strerror(-r));
                        return IMAGE_EXIT_IO;
                }
        }
        puts(s);
        return fflush(stdout) == 0 ? 0 : IMAGE_EXIT_IO;
}
