/* SPDX-License-Identifier: Apache-2.0 */
/* PE parser, Authenticode and UKI PCR prediction on PE files the test constructs. Every
 * rejection asserts its pe_error / reason string. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <openssl/sha.h>

#include "pcr/disk.h"
#include "pcr/pcr.h"
#include "pe/pe.h"

#define LFANEW 0x40U
#define COFF (LFANEW + 4)
#define OPT (COFF + 20)
#define OPT_SIZE 240U /* PE32+: 112 fixed + 16 data directories */
#define TABLE (OPT + OPT_SIZE)
#define HDRS 0x400U

typedef struct sect {
        const char *name;
        const void *data;
        uint32_t len;
        uint32_t vsize; /* 0 = len */
} sect;

static void put16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) v;
        p[1] = (uint8_t) (v >> 8);
}
static void put32(uint8_t *p, uint32_t v) {
        for (int i = 0; i < 4; i++)
                p[i] = (uint8_t) (v >> (8 * i));
}

/* Builds a PE32+ file: headers (0x400), then each section's raw data at 0x200 alignment in
 * reverse table order (so sorting by PointerToRawData matters), then `trailing` bytes of 0xAB,
 * then a certificate table of cert_size bytes (0xCC). */
static uint8_t *build_pe(const sect *s, size_t n, size_t trailing, size_t cert_size, size_t *ret_len) {
        size_t off = HDRS;
        uint32_t raw_off[8];
        assert_true(n <= 8);
        for (size_t k = n; k-- > 0;) {
                raw_off[k] = (uint32_t) off;
                off += (s[k].len + 0x1FF) & ~0x1FFU;
        }
        size_t len = off + trailing + cert_size;
        uint8_t *p = calloc(1, len);
        assert_non_null(p);
        p[0] = 'M';
        p[1] = 'Z';
        put32(p + 0x3c, LFANEW);
        memcpy(p + LFANEW, "PE\0\0", 4);
        put16(p + COFF, 0x8664);
        put16(p + COFF + 2, (uint16_t) n);
        put16(p + COFF + 16, OPT_SIZE);
        put16(p + OPT, 0x20b);
        put32(p + OPT + 60, HDRS);
        put32(p + OPT + 64, 0x12345678); /* CheckSum: excluded from the hash */
        put32(p + OPT + 108, 16);
        for (size_t i = 0; i < OPT_SIZE; i++) /* fill the rest of the header with a pattern */
                if (i >= 112 && i < 112 + 4 * 8)
                        p[OPT + i] = (uint8_t) (i * 7);
        if (cert_size) {
                put32(p + OPT + 112 + 4 * 8, (uint32_t) (off + trailing));
                put32(p + OPT + 112 + 4 * 8 + 4, (uint32_t) cert_size);
        }
        for (size_t k = 0; k < n; k++) {
                uint8_t *h = p + TABLE + 40 * k;
                strncpy((char *) h, s[k].name, 8);
                put32(h + 8, s[k].vsize ? s[k].vsize : s[k].len);
                put32(h + 12, 0x1000 * (uint32_t) (k + 1));
                put32(h + 16, s[k].len);
                put32(h + 20, raw_off[k]);
                memcpy(p + raw_off[k], s[k].data, s[k].len);
        }
        memset(p + off, 0xAB, trailing);
        memset(p + off + trailing, 0xCC, cert_size);
        *ret_len = len;
        return p;
}

static uint8_t text_bytes[0x300], data_bytes[0x80];

static void fill(void) {
        for (size_t i = 0; i < sizeof(text_bytes); i++)
                text_bytes[i] = (uint8_t) (i * 31 + 7);
        for (size_t i = 0; i < sizeof(data_bytes); i++)
                data_bytes[i] = (uint8_t) (i ^ 0x5a);
}

static uint8_t *small_pe(size_t trailing, size_t cert, size_t *len) {
        fill();
        sect s[] = { { ".text", text_bytes, sizeof(text_bytes), 0 }, { ".data", data_bytes, sizeof(data_bytes), 0x100 } };
        return build_pe(s, 2, trailing, cert, len);
}

static pe_error parse_err(const uint8_t *p, size_t len) {
        pe_file *pe = NULL;
        pe_error e = PE_OK;
        int r = pe_parse(p, len, &pe, &e);
        if (r == 0) {
                pe_free(pe);
                return PE_OK;
        }
        assert_int_equal(r, -EBADMSG);
        assert_null(pe);
        return e;
}

/* Authenticode written out by hand with this layout's offsets (PE/COFF spec, "Calculating the
 * PE Image Hash"). */
static void expected_authenticode(const uint8_t *p, size_t len, size_t cert, uint8_t out[32]) {
        EVP_MD_CTX *c = EVP_MD_CTX_new();
        assert_non_null(c);
        assert_int_equal(EVP_DigestInit_ex(c, EVP_sha256(), NULL), 1);
        size_t sum = OPT + 64, dir = OPT + 112 + 4 * 8;
        EVP_DigestUpdate(c, p, sum);
        EVP_DigestUpdate(c, p + sum + 4, dir - sum - 4);
        EVP_DigestUpdate(c, p + dir + 8, HDRS - dir - 8);
        /* .data sits first in the file (0x400), .text after it (0x600) */
        EVP_DigestUpdate(c, p + 0x400, 0x80);
        EVP_DigestUpdate(c, p + 0x600, 0x300);
        size_t hashed = HDRS + 0x80 + 0x300;
        EVP_DigestUpdate(c, p + hashed, len - cert - hashed);
        assert_int_equal(EVP_DigestFinal_ex(c, out, NULL), 1);
        EVP_MD_CTX_free(c);
}

static void test_parse_ok(void **state) {
        (void) state;
        size_t len;
        _cleanup_free_ uint8_t *p = small_pe(0x10, 0, &len);
        _cleanup_(pe_freep) pe_file *pe = NULL;
        pe_error e = PE_ERR_BAD_DOS_MAGIC;
        assert_int_equal(pe_parse(p, len, &pe, &e), 0);
        assert_int_equal(e, PE_OK);
        assert_true(pe->pe32plus);
        assert_int_equal(pe->n_sections, 2);
        const pe_section *d = pe_find_section(pe, ".data");
        assert_non_null(d);
        assert_int_equal(d->virtual_size, 0x100);
        assert_null(pe_find_section(pe, ".linux"));
        assert_null(pe_find_section(pe, ".toolongname"));

        /* VirtualSize > SizeOfRawData: zero-filled copy */
        const uint8_t *b;
        size_t bl;
        _cleanup_free_ uint8_t *copy = NULL;
        assert_int_equal(pe_section_bytes(pe, d, 1 << 20, &b, &bl, &copy), 0);
        assert_non_null(copy);
        assert_int_equal(bl, 0x100);
        assert_memory_equal(b, data_bytes, 0x80);
        for (size_t i = 0x80; i < 0x100; i++)
                assert_int_equal(b[i], 0);
        assert_int_equal(pe_section_bytes(pe, d, 0xff, &b, &bl, &copy), -EFBIG);
}

static void test_authenticode(void **state) {
        (void) state;
        for (int signed_pe = 0; signed_pe < 2; signed_pe++) {
                size_t cert = signed_pe ? 0x48 : 0;
                size_t len;
                _cleanup_free_ uint8_t *p = small_pe(0x18, cert, &len);
                _cleanup_(pe_freep) pe_file *pe = NULL;
                assert_int_equal(pe_parse(p, len, &pe, NULL), 0);
                uint8_t got[32], want[32];
                assert_int_equal(pe_authenticode_digest(pe, EVP_sha256(), got), 0);
                expected_authenticode(p, len, cert, want);
                assert_memory_equal(got, want, 32);

                /* the excluded fields do not matter, everything else does */
                put32(p + OPT + 64, 0xdeadbeef);
                assert_int_equal(pe_authenticode_digest(pe, EVP_sha256(), got), 0);
                assert_memory_equal(got, want, 32);
                if (cert) {
                        p[len - 1] ^= 1; /* certificate content */
                        assert_int_equal(pe_authenticode_digest(pe, EVP_sha256(), got), 0);
                        assert_memory_equal(got, want, 32);
                }
                p[0x600] ^= 1; /* .text */
                assert_int_equal(pe_authenticode_digest(pe, EVP_sha256(), got), 0);
                assert_memory_not_equal(got, want, 32);
                p[0x600] ^= 1;
                p[len - cert - 1] ^= 1; /* trailing data */
                assert_int_equal(pe_authenticode_digest(pe, EVP_sha256(), got), 0);
                assert_memory_not_equal(got, want, 32);
        }
}

static void test_rejections(void **state) {
        (void) state;
        size_t len;
        _cleanup_free_ uint8_t *orig = small_pe(0x10, 0x20, &len);
        _cleanup_free_ uint8_t *p = malloc(len);
        assert_non_null(p);
#define RESET() memcpy(p, orig, len)

        RESET();
        assert_int_equal(parse_err(p, len), PE_OK);
        assert_int_equal(parse_err(p, 10), PE_ERR_TRUNCATED_DOS_HEADER);
        p[0] = 'X';
        assert_int_equal(parse_err(p, len), PE_ERR_BAD_DOS_MAGIC);
        RESET();
        put32(p + 0x3c, 0xFFFFFFFE);
        assert_int_equal(parse_err(p, len), PE_ERR_BAD_LFANEW);
        RESET();
        p[LFANEW + 1] = 'X';
        assert_int_equal(parse_err(p, len), PE_ERR_BAD_PE_SIGNATURE);
        RESET();
        assert_int_equal(parse_err(p, COFF + 10), PE_ERR_TRUNCATED_COFF_HEADER);
        put16(p + OPT, 0x999);
        assert_int_equal(parse_err(p, len), PE_ERR_BAD_OPTIONAL_MAGIC);
        RESET();
        put16(p + COFF + 16, 10);
        assert_int_equal(parse_err(p, len), PE_ERR_TRUNCATED_OPTIONAL_HEADER);
        RESET();
        assert_int_equal(parse_err(p, OPT + 100), PE_ERR_TRUNCATED_OPTIONAL_HEADER);
        put32(p + OPT + 108, 100);
        assert_int_equal(parse_err(p, len), PE_ERR_BAD_DATA_DIRECTORIES);
        RESET();
        put32(p + OPT + 108, 0xFFFFFFFF);
        assert_int_equal(parse_err(p, len), PE_ERR_BAD_DATA_DIRECTORIES);
        RESET();
        put16(p + COFF + 2, 200);
        assert_int_equal(parse_err(p, len), PE_ERR_TOO_MANY_SECTIONS);
        RESET();
        assert_int_equal(parse_err(p, TABLE + 50), PE_ERR_TRUNCATED_SECTION_TABLE);
        put16(p + COFF + 2, 20); /* table now runs past SizeOfHeaders */
        assert_int_equal(parse_err(p, len), PE_ERR_BAD_SIZE_OF_HEADERS);
        RESET();
        put32(p + OPT + 60, (uint32_t) len + 1);
        assert_int_equal(parse_err(p, len), PE_ERR_BAD_SIZE_OF_HEADERS);
        RESET();
        put32(p + TABLE + 16, 0xFFFFFFFF); /* .text SizeOfRawData */
        assert_int_equal(parse_err(p, len), PE_ERR_SECTION_BEYOND_FILE);
        RESET();
        put32(p + TABLE + 20, 0xFFFFFF00); /* .text PointerToRawData: offset + size overflows 32 bits */
        assert_int_equal(parse_err(p, len), PE_ERR_SECTION_BEYOND_FILE);
        RESET();
        assert_int_equal(parse_err(p, 0x700), PE_ERR_SECTION_BEYOND_FILE);
        put32(p + TABLE + 20, 0x440); /* .text overlaps .data at 0x400 */
        assert_int_equal(parse_err(p, len), PE_ERR_SECTIONS_OVERLAP);
        RESET();
        put32(p + TABLE + 20, 0x100); /* .text inside the headers */
        assert_int_equal(parse_err(p, len), PE_ERR_SECTIONS_OVERLAP);
        RESET();
        size_t certdir = OPT + 112 + 4 * 8;
        put32(p + certdir, 0x500); /* certificate table inside .data/.text */
        assert_int_equal(parse_err(p, len), PE_ERR_BAD_CERT_TABLE);
        RESET();
        put32(p + certdir + 4, 0xFFFFFFF0); /* size overflows */
        assert_int_equal(parse_err(p, len), PE_ERR_BAD_CERT_TABLE);
        RESET();
        assert_int_equal(parse_err(p, len - 1), PE_ERR_BAD_CERT_TABLE); /* not at the end */
        assert_string_equal(pe_error_to_string(PE_ERR_BAD_CERT_TABLE),
                            "certificate table is not at the end of the file after all sections");
#undef RESET
}

static void extend(uint8_t pcr[32], const void *data, size_t len) {
        uint8_t buf[64];
        memcpy(buf, pcr, 32);
        SHA256(data, len, buf + 32);
        SHA256(buf, 64, pcr);
}

static void extend_digest(uint8_t pcr[32], const uint8_t d[32]) {
        uint8_t buf[64];
        memcpy(buf, pcr, 32);
        memcpy(buf + 32, d, 32);
        SHA256(buf, 64, pcr);
}

static const char cmdline[] = "console=ttyS0 ro\0";
static uint8_t initrd[3000];

static uint8_t *small_uki(bool with_linux_pe, bool with_cmdline, size_t *len, uint8_t **ret_kernel, size_t *kernel_len) {
        uint8_t *kernel = small_pe(0, 0, kernel_len);
        if (!with_linux_pe)
                kernel[0] = 'X';
        for (size_t i = 0; i < sizeof(initrd); i++)
                initrd[i] = (uint8_t) (i * 13);
        static const char osrel[] = "ID=test\n";
        sect s[4] = {
                { ".osrel", osrel, sizeof(osrel) - 1, 0 },
                { ".initrd", initrd, sizeof(initrd), 0 },
                { ".linux", kernel, (uint32_t) *kernel_len, 0 },
                { ".cmdline", cmdline, sizeof(cmdline) - 1, 0 },
        };
        uint8_t *u = build_pe(s, with_cmdline ? 4 : 3, 0, 0, len);
        *ret_kernel = kernel;
        return u;
}

static void test_predict_uki(void **state) {
        (void) state;
        size_t len, klen;
        _cleanup_free_ uint8_t *kernel = NULL;
        _cleanup_free_ uint8_t *u = small_uki(true, true, &len, &kernel, &klen);

        pcr_uki_options opts = { .pcrphase = "enter-initrd:ready" };
        _cleanup_(pcr_log_freep) pcr_log *log = NULL;
        pcr_uki_info info = { 0 };
        const char *reason = NULL;
        assert_int_equal(pcr_predict_uki(u, len, &opts, &log, &info, &reason), 0);
        assert_string_equal(info.cmdline, "console=ttyS0 ro");

        uint8_t want[32] = { 0 }, a[32], k[32];
        /* PCR 4 */
        static const char action[] = "Calling EFI Application from Boot Option";
        static const uint8_t sep[4] = { 0 };
        extend(want, action, strlen(action));
        extend(want, sep, 4);
        {
                _cleanup_(pe_freep) pe_file *pe = NULL, *kpe = NULL;
                assert_int_equal(pe_parse(u, len, &pe, NULL), 0);
                assert_int_equal(pe_authenticode_digest(pe, EVP_sha256(), a), 0);
                assert_int_equal(pe_parse(kernel, klen, &kpe, NULL), 0);
                assert_int_equal(pe_authenticode_digest(kpe, EVP_sha256(), k), 0);
        }
        extend_digest(want, a);
        extend_digest(want, k);
        assert_memory_equal(log->pcr[4], want, 32);
        assert_memory_equal(info.uki_authenticode, a, 32);

        /* PCR 9: UTF-16LE command line with NUL, then the initrd */
        memset(want, 0, 32);
        uint8_t u16[2 * sizeof("console=ttyS0 ro")] = { 0 };
        for (size_t i = 0; i < strlen("console=ttyS0 ro"); i++)
                u16[2 * i] = (uint8_t) cmdline[i];
        extend(want, u16, sizeof(u16));
        extend(want, initrd, sizeof(initrd));
        assert_memory_equal(log->pcr[9], want, 32);

        /* PCR 11: name+NUL, data, in stub order .linux .osrel .cmdline .initrd; then phases */
        memset(want, 0, 32);
        extend(want, ".linux", 7);
        extend(want, kernel, klen);
        extend(want, ".osrel", 7);
        extend(want, "ID=test\n", 8);
        extend(want, ".cmdline", 9);
        extend(want, cmdline, sizeof(cmdline) - 1);
        extend(want, ".initrd", 8);
        extend(want, initrd, sizeof(initrd));
        extend(want, "enter-initrd", 12);
        extend(want, "ready", 5);
        assert_memory_equal(log->pcr[11], want, 32);

        static const uint8_t zero[32] = { 0 };
        assert_memory_equal(log->pcr[8], zero, 32);
        assert_memory_equal(log->pcr[12], zero, 32);
        assert_memory_equal(log->pcr[13], zero, 32);
        assert_memory_equal(log->pcr[15], zero, 32);

        json_auto_t *j = pcr_log_to_json(log);
        assert_non_null(j);
        assert_non_null(json_object_get(json_object_get(j, "measurements"), "11"));
        assert_int_equal(json_array_size(json_object_get(j, "eventlog")), log->n_events);
        pcr_uki_info_done(&info);
}

static void test_loader_cmdline(void **state) {
        (void) state;
        size_t len, klen;
        _cleanup_free_ uint8_t *kernel = NULL;
        _cleanup_free_ uint8_t *u = small_uki(true, true, &len, &kernel, &klen);
        static const uint8_t zero[32] = { 0 };

        /* Secure Boot on and .cmdline present: the loader's command line is ignored. */
        pcr_uki_options opts = { .loader_cmdline = "init=/bin/sh", .secure_boot = true };
        _cleanup_(pcr_log_freep) pcr_log *log = NULL;
        assert_int_equal(pcr_predict_uki(u, len, &opts, &log, NULL, NULL), 0);
        assert_memory_equal(log->pcr[12], zero, 32);

        /* Secure Boot off: it replaces .cmdline and goes into PCR 12 (and 9). */
        opts.secure_boot = false;
        _cleanup_(pcr_log_freep) pcr_log *log2 = NULL;
        pcr_uki_info info = { 0 };
        assert_int_equal(pcr_predict_uki(u, len, &opts, &log2, &info, NULL), 0);
        assert_string_equal(info.cmdline, "init=/bin/sh");
        uint8_t want[32] = { 0 };
        uint8_t u16[2 * sizeof("init=/bin/sh")] = { 0 };
        for (size_t i = 0; i < strlen("init=/bin/sh"); i++)
                u16[2 * i] = (uint8_t) "init=/bin/sh"[i];
        extend(want, u16, sizeof(u16));
        assert_memory_equal(log2->pcr[12], want, 32);
        extend(want, initrd, sizeof(initrd));
        assert_memory_equal(log2->pcr[9], want, 32);
        pcr_uki_info_done(&info);

        /* Without the kernel's LoadOptions measurement PCR 9 holds only the initrd. */
        opts = (pcr_uki_options){ .no_kernel_cmdline_measurement = true };
        _cleanup_(pcr_log_freep) pcr_log *log3 = NULL;
        assert_int_equal(pcr_predict_uki(u, len, &opts, &log3, NULL, NULL), 0);
        memset(want, 0, 32);
        extend(want, initrd, sizeof(initrd));
        assert_memory_equal(log3->pcr[9], want, 32);
}

static void test_predict_rejections(void **state) {
        (void) state;
        size_t len, klen;
        const char *reason = NULL;
        pcr_log *log = NULL;
        {
                _cleanup_free_ uint8_t *kernel = NULL;
                _cleanup_free_ uint8_t *u = small_uki(false, true, &len, &kernel, &klen);
                assert_int_equal(pcr_predict_uki(u, len, NULL, &log, NULL, &reason), -EBADMSG);
                assert_string_equal(reason, ".linux: no MZ signature (not an EFI-stub kernel)");
                assert_int_equal(pcr_predict_uki(u, 0x40, NULL, &log, NULL, &reason), -EBADMSG);
                assert_string_equal(reason, "UKI: e_lfanew points outside the file");
                assert_int_equal(pcr_predict_uki(u, 0x500, NULL, &log, NULL, &reason), -EBADMSG);
                assert_string_equal(reason, "UKI: section raw data beyond the end of the file");
                pcr_uki_options o = { .stub_version = 251 };
                assert_int_equal(pcr_predict_uki(u, len, &o, &log, NULL, &reason), -EINVAL);
                assert_string_equal(reason, "systemd-stub versions before 252 are not modelled");
        }
        size_t n;
        _cleanup_free_ uint8_t *p = small_pe(0, 0, &n);
        assert_int_equal(pcr_predict_uki(p, n, NULL, &log, NULL, &reason), -EBADMSG);
        assert_string_equal(reason, "UKI: no .linux section");
        assert_null(log);
}

/* A hand-made GPT + FAT16 image is covered by the script test (sfdisk + mkfs.vfat); here the
 * reader's refusals on bytes that are not one. */
static void test_disk_rejections(void **state) {
        (void) state;
        _cleanup_free_ uint8_t *img = calloc(1, 64 * 1024);
        assert_non_null(img);
        gpt_source src;
        gpt_source_memory(&src, img, 64 * 1024);
        uint64_t off, size;
        const char *reason = NULL;
        assert_int_equal(gpt_find_esp(&src, &off, &size, &reason), -EBADMSG);
        assert_string_equal(reason, "GPT: no \"EFI PART\" signature at LBA 1");
        memcpy(img + 512, "EFI PART", 8);
        put32(img + 512 + 12, 92);
        assert_int_equal(gpt_find_esp(&src, &off, &size, &reason), -EBADMSG);
        assert_string_equal(reason, "GPT: bad header CRC32");
        gpt_source_memory(&src, img, 700);
        assert_int_equal(gpt_find_esp(&src, &off, &size, &reason), -EBADMSG);
        assert_string_equal(reason, "GPT: image too small for a GPT header");

        /* FAT: no boot-sector signature */
        gpt_source_memory(&src, img, 64 * 1024);
        uint8_t *buf = NULL;
        size_t bl = 0;
        assert_int_equal(fat_read_file(&src, 0, 64 * 1024, "EFI/BOOT/BOOTX64.EFI", 1 << 20, &buf, &bl, &reason),
                         -EBADMSG);
        assert_string_equal(reason, "FAT: no boot sector signature 55AA");
}

static const char *data_dir;

static uint8_t *load(const char *name, size_t *len) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", data_dir, name);
        FILE *f = fopen(path, "rbe");
        assert_non_null(f);
        uint8_t *buf = malloc(1 << 20);
        assert_non_null(buf);
        *len = fread(buf, 1, 1 << 20, f);
        fclose(f);
        return buf;
}

#define ESP_OFF (34U * 512U)

static const char *esp_reason(uint8_t *img, size_t len, int want_r) {
        gpt_source src;
        gpt_source_memory(&src, img, len);
        uint8_t *buf = NULL;
        size_t bl = 0;
        const char *reason = NULL;
        int r = gpt_read_esp_file(&src, "EFI/BOOT/BOOTX64.EFI", 1 << 20, &buf, &bl, &reason);
        assert_int_equal(r, want_r);
        assert_null(buf);
        return reason;
}

static void test_gpt_fat(void **state) {
        (void) state;
        size_t len, ulen;
        _cleanup_free_ uint8_t *img = load("gpt-fat12", &len);
        _cleanup_free_ uint8_t *uki = load("uki", &ulen);
        _cleanup_free_ uint8_t *p = malloc(len);
        assert_non_null(p);

        gpt_source src;
        gpt_source_memory(&src, img, len);
        uint64_t off, size;
        assert_int_equal(gpt_find_esp(&src, &off, &size, NULL), 0);
        assert_int_equal(off, ESP_OFF);
        assert_int_equal(size, 128 * 512);
        uint8_t *buf = NULL;
        size_t bl = 0;
        assert_int_equal(gpt_read_esp_file(&src, "efi/boot/bootx64.efi", 1 << 20, &buf, &bl, NULL), 0);
        assert_int_equal(bl, ulen);
        assert_memory_equal(buf, uki, ulen);
        free(buf);
        const char *reason = NULL;
        assert_int_equal(gpt_read_esp_file(&src, "EFI/BOOT/BOOTX64.EFI", 100, &buf, &bl, &reason), -EFBIG);
        assert_string_equal(reason, "FAT: file larger than allowed");
        assert_int_equal(gpt_read_esp_file(&src, "EFI/BOOT/GRUBX64.EFI", 1 << 20, &buf, &bl, &reason), -ENOENT);
        assert_string_equal(reason, "FAT: path not found");
        assert_int_equal(gpt_read_esp_file(&src, "EFI/BOOT", 1 << 20, &buf, &bl, &reason), -EISDIR);
        assert_int_equal(gpt_read_esp_file(&src, "EFI/BOOT/BOOTX64.EFI/x", 1 << 20, &buf, &bl, &reason), -ENOTDIR);

        uint32_t rsvd = img[ESP_OFF + 14] | (img[ESP_OFF + 15] << 8);
        uint32_t fatsz = img[ESP_OFF + 22] | (img[ESP_OFF + 23] << 8);
        size_t fat = ESP_OFF + rsvd * 512;
#define RESET() memcpy(p, img, len)
        RESET();
        assert_string_equal(esp_reason(p, 40 * 512, -EBADMSG), "GPT: ESP extends beyond the end of the image");
        p[2 * 512 + 40] ^= 1; /* partition entry array (LBA 2) */
        assert_string_equal(esp_reason(p, len, -EBADMSG), "GPT: bad partition entry array CRC32");
        RESET();
        put16(p + ESP_OFF + 11, 300);
        assert_string_equal(esp_reason(p, len, -EBADMSG), "FAT: bytes per sector not 512..4096");
        RESET();
        p[ESP_OFF + 13] = 3;
        assert_string_equal(esp_reason(p, len, -EBADMSG), "FAT: sectors per cluster not a power of two");
        RESET();
        put16(p + ESP_OFF + 19, 0);
        put32(p + ESP_OFF + 32, 0xFFFFFFFF);
        assert_string_equal(esp_reason(p, len, -EBADMSG), "FAT: volume larger than its partition");
        RESET();
        put16(p + ESP_OFF + 22, 0);
        put32(p + ESP_OFF + 36, 0);
        assert_string_equal(esp_reason(p, len, -EBADMSG), "FAT: zero reserved sectors, FATs, FAT size or total sectors");
        RESET();
        /* every FAT12 entry from cluster 2 on points to cluster 2: any chain loops */
        for (size_t i = 3; i + 3 <= fatsz * 512; i += 3) {
                p[fat + i] = 0x02;
                p[fat + i + 1] = 0x20;
                p[fat + i + 2] = 0x00;
        }
        assert_string_equal(esp_reason(p, len, -EBADMSG), "FAT: cluster chain loops");
        RESET();
        memset(p + fat + 3, 0, fatsz * 512 - 3); /* all clusters free */
        assert_string_equal(esp_reason(p, len, -EBADMSG), "FAT: bad or free cluster inside a chain");
#undef RESET
}

int main(void) {
        static char dir[4096];
        const char *src = getenv("CT_SOURCE_DIR");
        snprintf(dir, sizeof(dir), "%s/test/image-measure/data", src ? src : ".");
        data_dir = dir;
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_ok),          cmocka_unit_test(test_authenticode),
                cmocka_unit_test(test_rejections),        cmocka_unit_test(test_predict_uki),
                cmocka_unit_test(test_loader_cmdline),    cmocka_unit_test(test_predict_rejections),
                cmocka_unit_test(test_disk_rejections),   cmocka_unit_test(test_gpt_fat),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
