/* SPDX-License-Identifier: Apache-2.0 */
#include "pcr/pcr.h"

#include <openssl/sha.h>
#include <pthread.h>
#include <stdio.h>

#include "basic/cleanup-openssl.h"
#include "basic/encoding.h"

const unsigned pcr_predicted_set[7] = { 4, 8, 9, 11, 12, 13, 15 };

/* Event data recorded in the log is cut here; the digest always covers all of it. */
#define PCR_EVENT_DATA_MAX 256U

pcr_log *pcr_log_new(void) {
        return calloc(1, sizeof(pcr_log));
}

pcr_log *pcr_log_free(pcr_log *log) {
        if (!log)
                return NULL;
        for (size_t i = 0; i < log->n_events; i++) {
                free(log->events[i].type);
                free(log->events[i].description);
                free(log->events[i].data_hex);
        }
        free(log->events);
        free(log);
        return NULL;
}

int pcr_log_extend(pcr_log *log, unsigned pcr, const uint8_t digest[PCR_DIGEST_SIZE], const char *type,
                   const char *description, const void *data, size_t data_len) {
        if (!log || pcr >= PCR_COUNT || !digest || !type || !description)
                return -EINVAL;
        if (log->n_events >= PCR_LOG_MAX_EVENTS)
                return -E2BIG;
        pcr_event *n = realloc(log->events, (log->n_events + 1) * sizeof(pcr_event));
        if (!n)
                return -ENOMEM;
        log->events = n;
        pcr_event *e = &log->events[log->n_events];
        *e = (pcr_event){ .pcr = pcr };
        memcpy(e->digest, digest, PCR_DIGEST_SIZE);
        e->type = strdup(type);
        e->description = strdup(description);
        if (data)
                e->data_hex = hex_encode(data, data_len < PCR_EVENT_DATA_MAX ? data_len : PCR_EVENT_DATA_MAX);
        if (!e->type || !e->description || (data && !e->data_hex)) {
                free(e->type);
                free(e->description);
                free(e->data_hex);
                return -ENOMEM;
        }
        log->n_events++;

        /* TPM 2.0 Part 1 §17.7: PCR_new = H(PCR_old || digest). */
        uint8_t buf[2 * PCR_DIGEST_SIZE];
        memcpy(buf, log->pcr[pcr], PCR_DIGEST_SIZE);
        memcpy(buf + PCR_DIGEST_SIZE, digest, PCR_DIGEST_SIZE);
        SHA256(buf, sizeof(buf), log->pcr[pcr]);
        return 0;
}

int pcr_log_measure(pcr_log *log, unsigned pcr, const void *data, size_t len, const char *type,
                    const char *description, bool record_data) {
        uint8_t d[PCR_DIGEST_SIZE];
        if (!data && len > 0)
                return -EINVAL;
        SHA256(data ? data : (const void *) "", len, d);
        return pcr_log_extend(log, pcr, d, type, description, record_data ? data : NULL, len);
}

void pcr_uki_info_done(pcr_uki_info *info) {
        if (!info)
                return;
        free(info->cmdline);
        info->cmdline = NULL;
}

/* UEFI passes LoadOptions as UCS-2 with a terminating NUL; systemd-stub v252 widens the .cmdline
 * bytes up to the first NUL and sets LoadOptionsSize = strsize16() (NUL included). ASCII is
 * widened byte by byte (non-ASCII command lines are not supported by this model). */
static int to_utf16le(const char *s, uint8_t **ret, size_t *ret_len) {
        size_t n = strlen(s);
        if (n > (SIZE_MAX - 2) / 2)
                return -E2BIG;
        uint8_t *u = malloc(2 * n + 2);
        if (!u)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                u[2 * i] = (uint8_t) s[i];
                u[2 * i + 1] = 0;
        }
        u[2 * n] = u[2 * n + 1] = 0;
        *ret = u;
        *ret_len = 2 * n + 2;
        return 0;
}

/* systemd-stub's unified sections in measuring order (v252 src/fundamental/tpm-pcr.c
 * unified_sections[]; v254 added .uname and .sbat). .pcrsig is never measured: it signs the
 * result. */
static const char *const sections_v252[] = { ".linux", ".osrel", ".cmdline", ".initrd", ".splash", ".dtb", ".pcrpkey" };
static const char *const sections_v254[] = { ".linux", ".osrel", ".cmdline", ".initrd", ".splash",
                                             ".dtb",   ".uname", ".sbat",    ".pcrpkey" };

#define REASON(r)                    \
        do {                         \
                if (ret_reason)      \
                        *ret_reason = (r); \
                return -EBADMSG;     \
        } while (0)

static const char *uki_reason(pe_error e) {
        switch (e) {
        case PE_ERR_TRUNCATED_DOS_HEADER: return "UKI: truncated MS-DOS header";
        case PE_ERR_BAD_DOS_MAGIC: return "UKI: no MZ signature";
        case PE_ERR_BAD_LFANEW: return "UKI: e_lfanew points outside the file";
        case PE_ERR_BAD_PE_SIGNATURE: return "UKI: no PE signature at e_lfanew";
        case PE_ERR_TRUNCATED_COFF_HEADER: return "UKI: truncated COFF file header";
        case PE_ERR_BAD_OPTIONAL_MAGIC: return "UKI: optional header is neither PE32 nor PE32+";
        case PE_ERR_TRUNCATED_OPTIONAL_HEADER: return "UKI: truncated optional header";
        case PE_ERR_BAD_DATA_DIRECTORIES: return "UKI: data directories do not fit the optional header";
        case PE_ERR_TOO_MANY_SECTIONS: return "UKI: too many sections";
        case PE_ERR_TRUNCATED_SECTION_TABLE: return "UKI: truncated section table";
        case PE_ERR_BAD_SIZE_OF_HEADERS: return "UKI: SizeOfHeaders outside the file or inside the section table";
        case PE_ERR_SECTION_BEYOND_FILE: return "UKI: section raw data beyond the end of the file";
        case PE_ERR_SECTIONS_OVERLAP: return "UKI: section raw data overlaps the headers or another section";
        case PE_ERR_BAD_CERT_TABLE: return "UKI: certificate table is not at the end of the file after all sections";
        default: return "UKI: malformed PE";
        }
}

static const char *linux_reason(pe_error e) {
        switch (e) {
        case PE_ERR_TRUNCATED_DOS_HEADER: return ".linux: truncated MS-DOS header";
        case PE_ERR_BAD_DOS_MAGIC: return ".linux: no MZ signature (not an EFI-stub kernel)";
        case PE_ERR_BAD_LFANEW: return ".linux: e_lfanew points outside the section";
        case PE_ERR_BAD_PE_SIGNATURE: return ".linux: no PE signature at e_lfanew";
        case PE_ERR_SECTION_BEYOND_FILE: return ".linux: section raw data beyond the end of the kernel";
        case PE_ERR_SECTIONS_OVERLAP: return ".linux: section raw data overlaps the headers or another section";
        case PE_ERR_BAD_CERT_TABLE: return ".linux: certificate table is not at the end of the kernel";
        default: return ".linux: malformed PE";
        }
}

/* A prediction hashes the file twice: the UKI's Authenticode digest (every byte of the file) and
 * the section digests (.linux, .osrel, .cmdline, .initrd: PCR 11, and .initrd again for PCR 9)
 * plus the Authenticode digest of .linux (PCR 4). The two halves are about equal, so the UKI's
 * Authenticode runs on a second thread while this one hashes the sections: on two free cores a
 * prediction costs about one SHA-256 pass over the file (bench/image compares with one
 * `openssl dgst -sha256` pass). The bytes are the caller's (mmap'd by constellation-image). */
typedef struct authenticode_job {
        const pe_file *pe;
        uint8_t digest[PCR_DIGEST_SIZE];
        int r;
} authenticode_job;

static void *authenticode_thread(void *userdata) {
        authenticode_job *job = userdata;
        job->r = pe_authenticode_digest(job->pe, EVP_sha256(), job->digest);
        return NULL;
}

typedef struct section_digest {
        const char *name;
        bool present;
        uint8_t digest[PCR_DIGEST_SIZE];
} section_digest;

#define MAX_MEASURED_SECTIONS 9U

/* Everything that hashes section bytes, done before any extend so that it can overlap the UKI's
 * Authenticode thread. */
static int hash_sections(const pe_file *pe, const char *const *names, size_t n_names, section_digest *out,
                         uint8_t linux_authenticode[PCR_DIGEST_SIZE], const char **ret_reason) {
        for (size_t i = 0; i < n_names; i++) {
                out[i] = (section_digest){ .name = names[i] };
                const pe_section *s = pe_find_section(pe, names[i]);
                if (!s || s->virtual_size == 0)
                        continue;
                const uint8_t *b;
                size_t bl;
                _cleanup_free_ uint8_t *copy = NULL;
                int r = pe_section_bytes(pe, s, PCR_UKI_MAX_SIZE, &b, &bl, &copy);
                if (r == -EFBIG)
                        REASON("UKI: section VirtualSize too large");
                if (r < 0)
                        return r;
                /* EVP: OpenSSL's SHA-256 with SHA-NI where the CPU has it. */
                if (EVP_Digest(b, bl, out[i].digest, NULL, EVP_sha256(), NULL) != 1)
                        return -EIO;
                out[i].present = true;

                if (streq(names[i], ".linux")) {
                        /* The stub starts the kernel with LoadImage on the section's VirtualSize
                         * bytes; the firmware measures their Authenticode digest into PCR 4. */
                        pe_error pe_err = PE_OK;
                        _cleanup_(pe_freep) pe_file *kernel = NULL;
                        r = pe_parse(b, bl, &kernel, &pe_err);
                        if (r == -EBADMSG)
                                REASON(linux_reason(pe_err));
                        if (r < 0)
                                return r;
                        r = pe_authenticode_digest(kernel, EVP_sha256(), linux_authenticode);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static const section_digest *find_digest(const section_digest *d, size_t n, const char *name) {
        for (size_t i = 0; i < n; i++)
                if (d[i].present && streq(d[i].name, name))
                        return &d[i];
        return NULL;
}

static int predict(const pe_file *pe, const pcr_uki_options *opts, unsigned stub, pcr_log *log, pcr_uki_info *info,
                   const char **ret_reason) {
        const char *const *names = stub >= 254 ? sections_v254 : sections_v252;
        size_t n_names = stub >= 254 ? ELEMENTSOF(sections_v254) : ELEMENTSOF(sections_v252);
        section_digest digests[MAX_MEASURED_SECTIONS];
        int r;

        authenticode_job job = { .pe = pe };
        pthread_t thread;
        bool threaded = pthread_create(&thread, NULL, authenticode_thread, &job) == 0;
        if (!threaded)
                authenticode_thread(&job);
        r = hash_sections(pe, names, n_names, digests, info->linux_authenticode, ret_reason);
        if (threaded)
                pthread_join(thread, NULL);
        if (r < 0)
                return r;
        if (job.r < 0)
                return job.r;
        memcpy(info->uki_authenticode, job.digest, PCR_DIGEST_SIZE);

        /* PCR 4. TCG PC Client PFP §10.4.4: EV_EFI_ACTION is measured as the string without NUL;
         * §3.3.4.1: EV_SEPARATOR with 4 zero bytes when the firmware hands over to the OS loader. */
        static const char action[] = "Calling EFI Application from Boot Option";
        static const uint8_t separator[4] = { 0 };
        r = pcr_log_measure(log, 4, action, strlen(action), "EV_EFI_ACTION", action, true);
        if (r < 0)
                return r;
        r = pcr_log_measure(log, 4, separator, sizeof(separator), "EV_SEPARATOR", "separator", true);
        if (r < 0)
                return r;
        r = pcr_log_extend(log, 4, info->uki_authenticode, "EV_EFI_BOOT_SERVICES_APPLICATION",
                           "UKI (Authenticode SHA-256)", NULL, 0);
        if (r < 0)
                return r;
        r = pcr_log_extend(log, 4, info->linux_authenticode, "EV_EFI_BOOT_SERVICES_APPLICATION",
                           ".linux section: kernel started with LoadImage (Authenticode SHA-256)", NULL, 0);
        if (r < 0)
                return r;

        /* Effective command line: systemd-stub v252 stub.c takes the loader's LoadOptions instead
         * of .cmdline if Secure Boot is off or there is no .cmdline, and measures them into
         * PCR 12 (TPM_PCR_INDEX_KERNEL_PARAMETERS) as UCS-2 including the NUL. */
        _cleanup_free_ char *cmdline = NULL;
        const pe_section *cmd_s = pe_find_section(pe, ".cmdline");
        bool have_cmdline_section = cmd_s && cmd_s->virtual_size > 0;
        if (opts->loader_cmdline && *opts->loader_cmdline && (!opts->secure_boot || !have_cmdline_section)) {
                cmdline = strdup(opts->loader_cmdline);
                if (!cmdline)
                        return -ENOMEM;
                _cleanup_free_ uint8_t *u16 = NULL;
                size_t u16_len = 0;
                r = to_utf16le(cmdline, &u16, &u16_len);
                if (r < 0)
                        return r;
                r = pcr_log_measure(log, 12, u16, u16_len, "EV_IPL", "loader command line (UTF-16LE)", true);
                if (r < 0)
                        return r;
        } else if (have_cmdline_section) {
                const uint8_t *b;
                size_t bl;
                _cleanup_free_ uint8_t *copy = NULL;
                r = pe_section_bytes(pe, cmd_s, PCR_UKI_MAX_SIZE, &b, &bl, &copy);
                if (r < 0)
                        return r;
                const uint8_t *nul = memchr(b, 0, bl);
                cmdline = strndup((const char *) b, nul ? (size_t) (nul - b) : bl);
                if (!cmdline)
                        return -ENOMEM;
        }

        /* PCR 9: the Linux EFI stub (drivers/firmware/efi/libstub) measures its LoadOptions
         * (EV_EVENT_TAG, LINUX_EFI_LOADOPTIONS) and the initrd it loads via LoadFile2
         * (EV_EVENT_TAG, LINUX_EFI_INITRD): the same bytes as the .initrd section. */
        if (cmdline && !opts->no_kernel_cmdline_measurement) {
                _cleanup_free_ uint8_t *u16 = NULL;
                size_t u16_len = 0;
                r = to_utf16le(cmdline, &u16, &u16_len);
                if (r < 0)
                        return r;
                r = pcr_log_measure(log, 9, u16, u16_len, "EV_EVENT_TAG", "kernel command line (LoadOptions, UTF-16LE)",
                                    true);
                if (r < 0)
                        return r;
        }
        const section_digest *initrd = find_digest(digests, n_names, ".initrd");
        if (initrd) {
                r = pcr_log_extend(log, 9, initrd->digest, "EV_EVENT_TAG", "initrd (.initrd section)", NULL, 0);
                if (r < 0)
                        return r;
        }

        /* PCR 11: systemd-stub v252 stub.c: for each unified section present with a non-zero
         * size, EV_IPL of the name including its NUL, then EV_IPL of VirtualSize bytes of data. */
        for (size_t i = 0; i < n_names; i++) {
                if (!digests[i].present)
                        continue;
                r = pcr_log_measure(log, 11, names[i], strlen(names[i]) + 1, "EV_IPL", names[i], true);
                if (r < 0)
                        return r;
                char desc[64];
                snprintf(desc, sizeof(desc), "%s section data", names[i]);
                r = pcr_log_extend(log, 11, digests[i].digest, "EV_IPL", desc, NULL, 0);
                if (r < 0)
                        return r;
        }

        /* systemd-pcrphase (systemd 252 src/boot/pcrphase.c) extends PCR 11 with SHA-256 of the
         * phase word, without NUL, from userspace. */
        if (opts->pcrphase && *opts->pcrphase) {
                _cleanup_free_ char *phases = strdup(opts->pcrphase);
                if (!phases)
                        return -ENOMEM;
                char *save = NULL;
                for (char *w = strtok_r(phases, ":", &save); w; w = strtok_r(NULL, ":", &save)) {
                        char desc[128];
                        snprintf(desc, sizeof(desc), "systemd-pcrphase %.64s", w);
                        r = pcr_log_measure(log, 11, w, strlen(w), "systemd-pcrphase", desc, true);
                        if (r < 0)
                                return r;
                }
        }
        info->cmdline = TAKE_PTR(cmdline);
        return 0;
}

int pcr_predict_uki(const uint8_t *uki, size_t len, const pcr_uki_options *opts, pcr_log **ret,
                    pcr_uki_info *ret_info, const char **ret_reason) {
        static const pcr_uki_options defaults = { 0 };
        if (!uki || !ret)
                return -EINVAL;
        if (!opts)
                opts = &defaults;
        unsigned stub = opts->stub_version ? opts->stub_version : 252;
        if (stub < 252) {
                if (ret_reason)
                        *ret_reason = "systemd-stub versions before 252 are not modelled";
                return -EINVAL;
        }

        pe_error pe_err = PE_OK;
        _cleanup_(pe_freep) pe_file *pe = NULL;
        int r = pe_parse(uki, len, &pe, &pe_err);
        if (r == -EBADMSG)
                REASON(uki_reason(pe_err));
        if (r < 0)
                return r;
        const pe_section *linux_s = pe_find_section(pe, ".linux");
        if (!linux_s || linux_s->virtual_size == 0)
                REASON("UKI: no .linux section");

        _cleanup_(pcr_log_freep) pcr_log *log = pcr_log_new();
        if (!log)
                return -ENOMEM;
        pcr_uki_info info = { 0 };
        r = predict(pe, opts, stub, log, &info, ret_reason);
        if (r < 0) {
                pcr_uki_info_done(&info);
                return r;
        }
        if (ret_info)
                *ret_info = info;
        else
                pcr_uki_info_done(&info);
        *ret = TAKE_PTR(log);
        return 0;
}

json_t *pcr_log_to_json(const pcr_log *log) {
        if (!log)
                return NULL;
        json_auto_t *root = json_object();
        json_t *m = json_object();
        json_t *events = json_array();
        if (!root || json_object_set_new(root, "measurements", m) < 0 ||
            json_object_set_new(root, "eventlog", events) < 0)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(pcr_predicted_set); i++) {
                unsigned p = pcr_predicted_set[i];
                char key[8];
                snprintf(key, sizeof(key), "%u", p);
                _cleanup_free_ char *hex = hex_encode(log->pcr[p], PCR_DIGEST_SIZE);
                if (!hex || json_object_set_new(m, key, json_pack("{s:s,s:b}", "expected", hex, "warnOnly", 0)) < 0)
                        return NULL;
        }
        for (size_t i = 0; i < log->n_events; i++) {
                const pcr_event *e = &log->events[i];
                _cleanup_free_ char *hex = hex_encode(e->digest, PCR_DIGEST_SIZE);
                if (!hex)
                        return NULL;
                json_t *o = json_pack("{s:I,s:s,s:s,s:s}", "pcr", (json_int_t) e->pcr, "type", e->type, "digest", hex,
                                      "description", e->description);
                if (!o || (e->data_hex && json_object_set_new(o, "data", json_string(e->data_hex)) < 0) ||
                    json_array_append_new(events, o) < 0)
                        return NULL;
        }
        return TAKE_PTR(root);
}
