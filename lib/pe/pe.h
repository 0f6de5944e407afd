/* SPDX-License-Identifier: Apache-2.0 */
/* PE/COFF parsing and Authenticode image hashing (Microsoft PE/COFF specification, "PE Format":
 * §3 MS-DOS stub and signature, §3.3 COFF file header, §3.4 optional header and data directories,
 * §4 section table; Authenticode "Calculating the PE Image Hash" as implemented by EDK2's
 * DxeTpm2MeasureBootLib, which is what firmware extends into PCR 4).
 *
 * The parser validates in stages (headers, then section table, then every raw-data range against
 * the file) with overflow-free bounds checks, and names what was wrong in a pe_error. A parsed
 * pe_file borrows the caller's bytes: keep them alive while the pe_file is used. */
#pragma once

#include <openssl/evp.h>

#include "basic/macro.h"

/* More sections than this is not a PE any tool here produces (the spec's NumberOfSections is
 * 16-bit; the Windows loader stops at 96). */
#define PE_MAX_SECTIONS 96U
/* pe_section_bytes zero-fills at most this much beyond SizeOfRawData. */
#define PE_MAX_ZERO_FILL ((size_t) 64 << 20)

typedef enum pe_error {
        PE_OK = 0,
        PE_ERR_TRUNCATED_DOS_HEADER,  /* shorter than the 64-byte MS-DOS header */
        PE_ERR_BAD_DOS_MAGIC,         /* no "MZ" */
        PE_ERR_BAD_LFANEW,            /* e_lfanew points outside the file */
        PE_ERR_BAD_PE_SIGNATURE,      /* no "PE\0\0" at e_lfanew */
        PE_ERR_TRUNCATED_COFF_HEADER, /* COFF header runs past the end */
        PE_ERR_BAD_OPTIONAL_MAGIC,    /* neither PE32 (0x10b) nor PE32+ (0x20b) */
        PE_ERR_TRUNCATED_OPTIONAL_HEADER,
        PE_ERR_BAD_DATA_DIRECTORIES,  /* NumberOfRvaAndSizes does not fit SizeOfOptionalHeader */
        PE_ERR_TOO_MANY_SECTIONS,
        PE_ERR_TRUNCATED_SECTION_TABLE,
        PE_ERR_BAD_SIZE_OF_HEADERS,   /* SizeOfHeaders beyond the file or before the section table */
        PE_ERR_SECTION_BEYOND_FILE,   /* a section's raw data runs past the end of the file */
        PE_ERR_SECTIONS_OVERLAP,      /* two sections' raw data overlap, or one overlaps the headers */
        PE_ERR_BAD_CERT_TABLE,        /* certificate table outside the file or before the last section */
} pe_error;

const char *pe_error_to_string(pe_error e);

typedef struct pe_section {
        char name[9]; /* NUL-terminated, up to 8 bytes of the section header's Name */
        uint32_t virtual_size;
        uint32_t virtual_address;
        uint32_t raw_size;   /* SizeOfRawData */
        uint32_t raw_offset; /* PointerToRawData */
} pe_section;

typedef struct pe_file {
        const uint8_t *data; /* borrowed */
        size_t len;
        bool pe32plus;
        uint16_t machine;
        size_t checksum_offset;  /* file offset of OptionalHeader.CheckSum */
        size_t cert_dir_offset;  /* file offset of data directory entry 4 (0 when absent) */
        uint32_t cert_offset;    /* certificate table (file offset, not an RVA) */
        uint32_t cert_size;
        uint32_t size_of_headers;
        size_t n_sections;
        pe_section sections[]; /* in section-table order */
} pe_file;

/* Parses data[0..len). On failure returns -EBADMSG and sets *ret_error (may be NULL) to the
 * reason; on success *ret_error = PE_OK. */
int pe_parse(const uint8_t *data, size_t len, pe_file **ret, pe_error *ret_error);
pe_file *pe_free(pe_file *pe);
DEFINE_TRIVIAL_CLEANUP_FUNC(pe_file *, pe_free);

/* First section named exactly `name` (e.g. ".linux"), or NULL. */
const pe_section *pe_find_section(const pe_file *pe, const char *name);

/* The bytes a loader maps for a section: VirtualSize bytes from its raw data, zero-filled where
 * VirtualSize exceeds SizeOfRawData (PE/COFF §4). *ret_copy is set to a malloc'd buffer the caller
 * frees when padding was needed (then *ret points into it), NULL otherwise. -EFBIG if the padded
 * size would exceed max_size or the zero fill PE_MAX_ZERO_FILL. */
int pe_section_bytes(const pe_file *pe, const pe_section *s, size_t max_size, const uint8_t **ret,
                     size_t *ret_len, uint8_t **ret_copy);

/* Authenticode image digest with md (EVP_sha256() for PCR 4). ret must hold EVP_MD_size(md)
 * bytes. Excludes the CheckSum field, the certificate-table data directory entry and the
 * certificate table itself; hashes the headers, then the sections in PointerToRawData order, then
 * any data after the last section up to the certificate table. */
int pe_authenticode_digest(const pe_file *pe, const EVP_MD *md, uint8_t *ret);
