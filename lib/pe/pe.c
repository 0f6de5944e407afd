/* SPDX-License-Identifier: Apache-2.0 */
#include "pe/pe.h"

#include <stdio.h>

#include "basic/cleanup-openssl.h"

/* PE/COFF specification offsets. */
#define DOS_HEADER_SIZE 64U
#define DOS_LFANEW_OFFSET 0x3cU
#define COFF_HEADER_SIZE 20U      /* after the 4-byte signature */
#define SECTION_HEADER_SIZE 40U
#define OPT_MAGIC_PE32 0x10bU
#define OPT_MAGIC_PE32PLUS 0x20bU
#define OPT_CHECKSUM_OFFSET 64U   /* same in PE32 and PE32+ */
#define OPT_SIZE_OF_HEADERS_OFFSET 60U
#define OPT_NUM_RVA_PE32 92U      /* NumberOfRvaAndSizes */
#define OPT_NUM_RVA_PE32PLUS 108U
#define DATA_DIR_SECURITY 4U      /* IMAGE_DIRECTORY_ENTRY_SECURITY: file offset + size */

static uint16_t le16(const uint8_t *p) {
        return (uint16_t) (p[0] | (p[1] << 8));
}

static uint32_t le32(const uint8_t *p) {
        return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}

const char *pe_error_to_string(pe_error e) {
        switch (e) {
        case PE_OK: return "ok";
        case PE_ERR_TRUNCATED_DOS_HEADER: return "truncated MS-DOS header";
        case PE_ERR_BAD_DOS_MAGIC: return "no MZ signature";
        case PE_ERR_BAD_LFANEW: return "e_lfanew points outside the file";
        case PE_ERR_BAD_PE_SIGNATURE: return "no PE signature at e_lfanew";
        case PE_ERR_TRUNCATED_COFF_HEADER: return "truncated COFF file header";
        case PE_ERR_BAD_OPTIONAL_MAGIC: return "optional header is neither PE32 nor PE32+";
        case PE_ERR_TRUNCATED_OPTIONAL_HEADER: return "truncated optional header";
        case PE_ERR_BAD_DATA_DIRECTORIES: return "data directories do not fit the optional header";
        case PE_ERR_TOO_MANY_SECTIONS: return "too many sections";
        case PE_ERR_TRUNCATED_SECTION_TABLE: return "truncated section table";
        case PE_ERR_BAD_SIZE_OF_HEADERS: return "SizeOfHeaders outside the file or inside the section table";
        case PE_ERR_SECTION_BEYOND_FILE: return "section raw data beyond the end of the file";
        case PE_ERR_SECTIONS_OVERLAP: return "section raw data overlaps the headers or another section";
        case PE_ERR_BAD_CERT_TABLE: return "certificate table is not at the end of the file after all sections";
        }
        return "unknown PE error";
}

pe_file *pe_free(pe_file *pe) {
        free(pe);
        return NULL;
}

static int fail(pe_error e, pe_error *ret_error) {
        if (ret_error)
                *ret_error = e;
        return -EBADMSG;
}

int pe_parse(const uint8_t *data, size_t len, pe_file **ret, pe_error *ret_error) {
        if (!data && len > 0)
                return -EINVAL;
        if (!ret)
                return -EINVAL;

        /* Stage 1: MS-DOS header and PE signature (§3.1, §3.2). */
        if (len < DOS_HEADER_SIZE)
                return fail(PE_ERR_TRUNCATED_DOS_HEADER, ret_error);
        if (data[0] != 'M' || data[1] != 'Z')
                return fail(PE_ERR_BAD_DOS_MAGIC, ret_error);
        size_t pe_off = le32(data + DOS_LFANEW_OFFSET);
        if (!bounds_ok(len, pe_off, 4))
                return fail(PE_ERR_BAD_LFANEW, ret_error);
        if (memcmp(data + pe_off, "PE\0\0", 4) != 0)
                return fail(PE_ERR_BAD_PE_SIGNATURE, ret_error);

        /* Stage 2: COFF file header (§3.3). */
        size_t coff = pe_off + 4;
        if (!bounds_ok(len, coff, COFF_HEADER_SIZE))
                return fail(PE_ERR_TRUNCATED_COFF_HEADER, ret_error);
        uint16_t machine = le16(data + coff);
        size_t n_sections = le16(data + coff + 2);
        size_t opt_size = le16(data + coff + 16);
        size_t opt = coff + COFF_HEADER_SIZE;

        /* Stage 3: optional header (§3.4). */
        if (!bounds_ok(len, opt, 2) || opt_size < 2)
                return fail(PE_ERR_TRUNCATED_OPTIONAL_HEADER, ret_error);
        uint16_t magic = le16(data + opt);
        size_t num_rva_off;
        if (magic == OPT_MAGIC_PE32)
                num_rva_off = OPT_NUM_RVA_PE32;
        else if (magic == OPT_MAGIC_PE32PLUS)
                num_rva_off = OPT_NUM_RVA_PE32PLUS;
        else
                return fail(PE_ERR_BAD_OPTIONAL_MAGIC, ret_error);
        /* The fixed part up to and including NumberOfRvaAndSizes must be present. */
        if (opt_size < num_rva_off + 4 || !bounds_ok(len, opt, opt_size))
                return fail(PE_ERR_TRUNCATED_OPTIONAL_HEADER, ret_error);
        uint32_t num_rva = le32(data + opt + num_rva_off);
        size_t dirs = opt + num_rva_off + 4;
        /* Each data directory is 8 bytes; they must fit inside SizeOfOptionalHeader. */
        if (num_rva > (opt_size - num_rva_off - 4) / 8)
                return fail(PE_ERR_BAD_DATA_DIRECTORIES, ret_error);

        uint32_t size_of_headers = le32(data + opt + OPT_SIZE_OF_HEADERS_OFFSET);
        size_t cert_dir = 0;
        uint32_t cert_offset = 0, cert_size = 0;
        if (num_rva > DATA_DIR_SECURITY) {
                cert_dir = dirs + DATA_DIR_SECURITY * 8;
                cert_offset = le32(data + cert_dir);
                cert_size = le32(data + cert_dir + 4);
        }

        /* Stage 4: section table (§4). */
        if (n_sections > PE_MAX_SECTIONS)
                return fail(PE_ERR_TOO_MANY_SECTIONS, ret_error);
        size_t table = opt + opt_size;
        if (!bounds_ok(len, table, n_sections * SECTION_HEADER_SIZE))
                return fail(PE_ERR_TRUNCATED_SECTION_TABLE, ret_error);
        size_t table_end = table + n_sections * SECTION_HEADER_SIZE;
        /* Authenticode hashes [0, SizeOfHeaders) minus two fields: it must cover the headers
         * including the section table and stay inside the file. */
        if (size_of_headers < table_end || size_of_headers > len)
                return fail(PE_ERR_BAD_SIZE_OF_HEADERS, ret_error);

        _cleanup_(pe_freep) pe_file *pe = calloc(1, sizeof(pe_file) + n_sections * sizeof(pe_section));
        if (!pe)
                return -ENOMEM;

        /* Stage 5: every section's raw data inside the file, after the headers, disjoint. */
        uint64_t raw_end_max = size_of_headers;
        for (size_t i = 0; i < n_sections; i++) {
                const uint8_t *h = data + table + i * SECTION_HEADER_SIZE;
                pe_section *s = &pe->sections[i];
                memcpy(s->name, h, 8);
                s->name[8] = 0;
                s->virtual_size = le32(h + 8);
                s->virtual_address = le32(h + 12);
                s->raw_size = le32(h + 16);
                s->raw_offset = le32(h + 20);
                if (s->raw_size == 0)
                        continue;
                if (!bounds_ok(len, s->raw_offset, s->raw_size))
                        return fail(PE_ERR_SECTION_BEYOND_FILE, ret_error);
                if (s->raw_offset < size_of_headers)
                        return fail(PE_ERR_SECTIONS_OVERLAP, ret_error);
                uint64_t a0 = s->raw_offset, a1 = a0 + s->raw_size;
                for (size_t j = 0; j < i; j++) {
                        const pe_section *t = &pe->sections[j];
                        if (t->raw_size == 0)
                                continue;
                        uint64_t b0 = t->raw_offset, b1 = b0 + t->raw_size;
                        if (a0 < b1 && b0 < a1)
                                return fail(PE_ERR_SECTIONS_OVERLAP, ret_error);
                }
                if (a1 > raw_end_max)
                        raw_end_max = a1;
        }

        /* Stage 6: the certificate table (a file offset, §4.7 attribute certificate table) must
         * follow all section data and end the file; EDK2 hashes len - cert_size - hashed bytes of
         * trailing data, which is only the data before the table when it sits at the end. */
        if (cert_size > 0) {
                if (!bounds_ok(len, cert_offset, cert_size) || (size_t) cert_offset + cert_size != len ||
                    cert_offset < raw_end_max)
                        return fail(PE_ERR_BAD_CERT_TABLE, ret_error);
        }

        pe->data = data;
        pe->len = len;
        pe->pe32plus = magic == OPT_MAGIC_PE32PLUS;
        pe->machine = machine;
        pe->checksum_offset = opt + OPT_CHECKSUM_OFFSET;
        pe->cert_dir_offset = cert_dir;
        pe->cert_offset = cert_offset;
        pe->cert_size = cert_size;
        pe->size_of_headers = size_of_headers;
        pe->n_sections = n_sections;
        if (ret_error)
                *ret_error = PE_OK;
        *ret = TAKE_PTR(pe);
        return 0;
}

const pe_section *pe_find_section(const pe_file *pe, const char *name) {
        if (!pe || !name || strlen(name) > 8)
                return NULL;
        for (size_t i = 0; i < pe->n_sections; i++)
                if (streq(pe->sections[i].name, name))
                        return &pe->sections[i];
        return NULL;
}

int pe_section_bytes(const pe_file *pe, const pe_section *s, size_t max_size, const uint8_t **ret,
                     size_t *ret_len, uint8_t **ret_copy) {
        if (!pe || !s || !ret || !ret_len || !ret_copy)
                return -EINVAL;
        size_t vsize = s->virtual_size;
        if (vsize > max_size)
                return -EFBIG;
        /* Zero-fill is for .bss-like tails, never payload: a huge VirtualSize over a few raw bytes
         * is refused rather than allocated. */
        if (vsize > s->raw_size && vsize - s->raw_size > PE_MAX_ZERO_FILL)
                return -EFBIG;
        /* raw ranges were checked by pe_parse */
        if (vsize <= s->raw_size) {
                *ret = vsize > 0 ? pe->data + s->raw_offset : (const uint8_t *) "";
                *ret_len = vsize;
                *ret_copy = NULL;
                return 0;
        }
        uint8_t *copy = calloc(1, vsize);
        if (!copy)
                return -ENOMEM;
        if (s->raw_size > 0)
                memcpy(copy, pe->data + s->raw_offset, s->raw_size);
        *ret = copy;
        *ret_len = vsize;
        *ret_copy = copy;
        return 0;
}

static int cmp_raw_offset(const void *a, const void *b) {
        const pe_section *x = *(const pe_section *const *) a, *y = *(const pe_section *const *) b;
        if (x->raw_offset != y->raw_offset)
                return x->raw_offset < y->raw_offset ? -1 : 1;
        /* keep table order for equal offsets (only possible with raw_size 0, which is skipped) */
        return x < y ? -1 : (x > y);
}

int pe_authenticode_digest(const pe_file *pe, const EVP_MD *md, uint8_t *ret) {
        if (!pe || !md || !ret)
                return -EINVAL;
        _cleanup_(EVP_MD_CTX_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        if (!ctx || EVP_DigestInit_ex(ctx, md, NULL) != 1)
                return -ENOMEM;

        const uint8_t *d = pe->data;
        size_t hdr = pe->size_of_headers;
        /* Headers up to the CheckSum, then up to the certificate directory entry, then the rest
         * of the headers ("Calculating the PE Image Hash", steps 3-7). pe_parse checked that both
         * fields lie inside SizeOfHeaders. */
        size_t after_sum = pe->checksum_offset + 4;
        if (EVP_DigestUpdate(ctx, d, pe->checksum_offset) != 1)
                return -EIO;
        if (pe->cert_dir_offset > 0) {
                if (EVP_DigestUpdate(ctx, d + after_sum, pe->cert_dir_offset - after_sum) != 1 ||
                    EVP_DigestUpdate(ctx, d + pe->cert_dir_offset + 8, hdr - (pe->cert_dir_offset + 8)) != 1)
                        return -EIO;
        } else if (EVP_DigestUpdate(ctx, d + after_sum, hdr - after_sum) != 1)
                return -EIO;

        /* Sections sorted by PointerToRawData (steps 9-13). */
        _cleanup_free_ const pe_section **order = calloc(pe->n_sections ? pe->n_sections : 1, sizeof(*order));
        if (!order)
                return -ENOMEM;
        for (size_t i = 0; i < pe->n_sections; i++)
                order[i] = &pe->sections[i];
        qsort(order, pe->n_sections, sizeof(*order), cmp_raw_offset);
        uint64_t hashed = hdr;
        for (size_t i = 0; i < pe->n_sections; i++) {
                if (order[i]->raw_size == 0)
                        continue;
                if (EVP_DigestUpdate(ctx, d + order[i]->raw_offset, order[i]->raw_size) != 1)
                        return -EIO;
                hashed += order[i]->raw_size;
        }

        /* Extra data (step 14): FILE_SIZE - (CertDirectory.Size + SUM_OF_BYTES_HASHED) bytes from
         * SUM_OF_BYTES_HASHED, as EDK2 computes it. Disjoint sections after the headers and a
         * certificate table at the end make hashed <= len - cert_size. */
        if (hashed > pe->len - pe->cert_size)
                return -EBADMSG;
        size_t extra = pe->len - pe->cert_size - (size_t) hashed;
        if (extra > 0 && EVP_DigestUpdate(ctx, d + hashed, extra) != 1)
                return -EIO;

        unsigned n = 0;
        if (EVP_DigestFinal_ex(ctx, ret, &n) != 1)
                return -EIO;
        return 0;
}
