/* SPDX-License-Identifier: Apache-2.0 */
#include "pcr/disk.h"

#include <strings.h>
#include <sys/stat.h>

#define REASON(r, err)                     \
        do {                               \
                if (ret_reason)            \
                        *ret_reason = (r); \
                return (err);              \
        } while (0)

static uint16_t le16(const uint8_t *p) {
        return (uint16_t) (p[0] | (p[1] << 8));
}
static uint32_t le32(const uint8_t *p) {
        return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) | ((uint32_t) p[3] << 24);
}
static uint64_t le64(const uint8_t *p) {
        return (uint64_t) le32(p) | ((uint64_t) le32(p + 4) << 32);
}

static int mem_read(const gpt_source *src, uint64_t offset, void *buf, size_t len) {
        if (offset > src->size || src->size - offset < len)
                return -EIO;
        memcpy(buf, src->mem + offset, len);
        return 0;
}

void gpt_source_memory(gpt_source *src, const uint8_t *data, size_t len) {
        *src = (gpt_source){ .read = mem_read, .mem = data, .fd = -EBADF, .size = len };
}

static int fd_read(const gpt_source *src, uint64_t offset, void *buf, size_t len) {
        int fd = src->fd;
        uint8_t *p = buf;
        while (len > 0) {
                if (offset > (uint64_t) INT64_MAX)
                        return -EIO;
                ssize_t n = pread(fd, p, len, (off_t) offset);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (n == 0)
                        return -EIO;
                p += n;
                len -= (size_t) n;
                offset += (uint64_t) n;
        }
        return 0;
}

int gpt_source_fd(gpt_source *src, int fd) {
        struct stat st;
        if (!src || fd < 0)
                return -EINVAL;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        *src = (gpt_source){ .read = fd_read, .fd = fd, .size = (uint64_t) st.st_size };
        return 0;
}

static int src_read(const gpt_source *src, uint64_t off, void *buf, size_t len) {
        if (off > src->size || src->size - off < len)
                return -ERANGE;
        return src->read(src, off, buf, len);
}

/* CRC-32 as GPT uses it (UEFI 2.10 §5.3.2: the ISO 3309 / IEEE 802.3 polynomial, reflected). */
static uint32_t crc32_ieee(uint32_t crc, const uint8_t *p, size_t n) {
        crc = ~crc;
        while (n--) {
                crc ^= *p++;
                for (int k = 0; k < 8; k++)
                        crc = (crc >> 1) ^ (0xEDB88320U & (0U - (crc & 1U)));
        }
        return ~crc;
}

/* C12A7328-F81F-11D2-BA4B-00A0C93EC93B in GPT's mixed-endian byte order. */
static const uint8_t esp_type_guid[16] = { 0x28, 0x73, 0x2a, 0xc1, 0x1f, 0xf8, 0xd2, 0x11,
                                           0xba, 0x4b, 0x00, 0xa0, 0xc9, 0x3e, 0xc9, 0x3b };

#define GPT_MAX_ENTRIES_BYTES ((size_t) 1 << 20)
#define GPT_HEADER_MIN 92U

static int gpt_try(const gpt_source *src, uint32_t block, uint64_t *ret_offset, uint64_t *ret_size,
                   const char **ret_reason) {
        uint8_t hdr[4096];
        int r = src_read(src, block, hdr, block);
        if (r == -ERANGE)
                REASON("GPT: image too small for a GPT header", -EBADMSG);
        if (r < 0)
                return r;
        if (memcmp(hdr, "EFI PART", 8) != 0)
                REASON("GPT: no \"EFI PART\" signature at LBA 1", -ENOENT);
        uint32_t hsize = le32(hdr + 12);
        if (hsize < GPT_HEADER_MIN || hsize > block)
                REASON("GPT: header size out of range", -EBADMSG);
        uint32_t want = le32(hdr + 16);
        memset(hdr + 16, 0, 4);
        if (crc32_ieee(0, hdr, hsize) != want)
                REASON("GPT: bad header CRC32", -EBADMSG);
        uint64_t entries_lba = le64(hdr + 72);
        uint32_t n_entries = le32(hdr + 80);
        uint32_t entry_size = le32(hdr + 84);
        uint32_t entries_crc = le32(hdr + 88);
        /* §5.3.2: SizeOfPartitionEntry is 128 * 2^n. */
        if (entry_size < 128 || entry_size > 4096 || (entry_size & (entry_size - 1)) != 0)
                REASON("GPT: partition entry size out of range", -EBADMSG);
        if (n_entries == 0 || n_entries > GPT_MAX_ENTRIES_BYTES / entry_size)
                REASON("GPT: partition entry count out of range", -EBADMSG);
        size_t table_len = (size_t) n_entries * entry_size;
        if (entries_lba > src->size / block)
                REASON("GPT: partition entry array beyond the end of the image", -EBADMSG);
        uint64_t table_off = entries_lba * block;
        _cleanup_free_ uint8_t *table = malloc(table_len);
        if (!table)
                return -ENOMEM;
        r = src_read(src, table_off, table, table_len);
        if (r == -ERANGE)
                REASON("GPT: partition entry array beyond the end of the image", -EBADMSG);
        if (r < 0)
                return r;
        if (crc32_ieee(0, table, table_len) != entries_crc)
                REASON("GPT: bad partition entry array CRC32", -EBADMSG);

        for (uint32_t i = 0; i < n_entries; i++) {
                const uint8_t *e = table + (size_t) i * entry_size;
                if (memcmp(e, esp_type_guid, 16) != 0)
                        continue;
                uint64_t first = le64(e + 32), last = le64(e + 40);
                uint64_t blocks = src->size / block;
                if (first > last || last >= blocks)
                        REASON("GPT: ESP extends beyond the end of the image", -EBADMSG);
                *ret_offset = first * block;
                *ret_size = (last - first + 1) * block;
                return 0;
        }
        REASON("GPT: no EFI System Partition", -ENOENT);
}

int gpt_find_esp(const gpt_source *src, uint64_t *ret_offset, uint64_t *ret_size, const char **ret_reason) {
        if (!src || !src->read || !ret_offset || !ret_size)
                return -EINVAL;
        const char *reason = NULL;
        uint64_t off = 0, size = 0;
        int r = gpt_try(src, 512, &off, &size, &reason);
        if (r == -ENOENT && reason && strstr(reason, "signature")) {
                const char *reason512 = reason;
                r = gpt_try(src, 4096, &off, &size, &reason);
                if (r == -ENOENT && reason && strstr(reason, "signature"))
                        reason = reason512;
        }
        if (r == -ENOENT)
                r = -EBADMSG; /* no GPT or no ESP: the image is not what we need */
        if (r < 0) {
                if (ret_reason)
                        *ret_reason = reason ? reason : "GPT: read error";
                return r;
        }
        *ret_offset = off;
        *ret_size = size;
        return 0;
}

/* ---- FAT ---- */

#define FAT_MAX_TABLE ((size_t) 64 << 20)
#define FAT_MAX_DIR ((size_t) 2 << 20) /* 65536 entries of 32 bytes (fatgen103 §6) */
#define FAT_MAX_DEPTH 16U

typedef struct fat_volume {
        const gpt_source *src;
        uint64_t base;
        int type; /* 12, 16, 32 */
        uint32_t bytes_per_sector, sectors_per_cluster, cluster_size;
        uint64_t first_data_sector;
        uint32_t n_clusters; /* valid cluster numbers are 2 .. n_clusters+1 */
        uint64_t root_dir_sector; uint32_t root_dir_entries; /* FAT12/16 */
        uint32_t root_cluster;                               /* FAT32 */
        uint8_t *fat;
        size_t fat_len;
} fat_volume;

static int fat_open(fat_volume *v, const gpt_source *src, uint64_t offset, uint64_t size, const char **ret_reason) {
        uint8_t bs[512];
        if (size < sizeof(bs))
                REASON("FAT: partition smaller than a boot sector", -EBADMSG);
        int r = src_read(src, offset, bs, sizeof(bs));
        if (r == -ERANGE)
                REASON("FAT: boot sector beyond the end of the image", -EBADMSG);
        if (r < 0)
                return r;
        if (bs[510] != 0x55 || bs[511] != 0xAA)
                REASON("FAT: no boot sector signature 55AA", -EBADMSG);
        uint32_t bps = le16(bs + 11), spc = bs[13], rsvd = le16(bs + 14), nfats = bs[16];
        uint32_t root_ent = le16(bs + 17);
        uint64_t tot = le16(bs + 19) ? le16(bs + 19) : le32(bs + 32);
        uint64_t fatsz = le16(bs + 22) ? le16(bs + 22) : le32(bs + 36);
        if (bps < 512 || bps > 4096 || (bps & (bps - 1)))
                REASON("FAT: bytes per sector not 512..4096", -EBADMSG);
        if (spc == 0 || (spc & (spc - 1)))
                REASON("FAT: sectors per cluster not a power of two", -EBADMSG);
        if (rsvd == 0 || nfats == 0 || fatsz == 0 || tot == 0)
                REASON("FAT: zero reserved sectors, FATs, FAT size or total sectors", -EBADMSG);
        if (tot > size / bps)
                REASON("FAT: volume larger than its partition", -EBADMSG);
        uint64_t root_sectors = ((uint64_t) root_ent * 32 + bps - 1) / bps;
        uint64_t meta = rsvd + nfats * fatsz + root_sectors; /* all < 2^41: no overflow */
        if (meta >= tot)
                REASON("FAT: metadata larger than the volume", -EBADMSG);
        uint64_t clusters = (tot - meta) / spc;
        /* fatgen103 §3.5: the type follows from the cluster count alone. */
        int type = clusters < 4085 ? 12 : clusters < 65525 ? 16 : 32;
        if (type == 32 && clusters > 0x0FFFFFF5)
                REASON("FAT: too many clusters", -EBADMSG);
        if (type != 32 && root_ent == 0)
                REASON("FAT: FAT12/16 without a root directory", -EBADMSG);
        /* The FAT must hold an entry for every cluster. */
        uint64_t need = type == 12 ? (clusters + 2) * 3 / 2 + 1 : (clusters + 2) * (uint64_t) (type / 8);
        if (fatsz * bps < need)
                REASON("FAT: FAT too small for the cluster count", -EBADMSG);
        if (need > FAT_MAX_TABLE)
                REASON("FAT: FAT too large", -EBADMSG);

        *v = (fat_volume){
                .src = src,
                .base = offset,
                .type = type,
                .bytes_per_sector = bps,
                .sectors_per_cluster = spc,
                .cluster_size = bps * spc,
                .first_data_sector = meta,
                .n_clusters = (uint32_t) clusters,
                .root_dir_sector = rsvd + nfats * fatsz,
                .root_dir_entries = root_ent,
                .root_cluster = type == 32 ? le32(bs + 44) : 0,
                .fat_len = (size_t) need,
        };
        v->fat = malloc(v->fat_len);
        if (!v->fat)
                return -ENOMEM;
        r = src_read(src, offset + (uint64_t) rsvd * bps, v->fat, v->fat_len);
        if (r < 0) {
                free(v->fat);
                v->fat = NULL;
                if (r == -ERANGE)
                        REASON("FAT: FAT beyond the end of the image", -EBADMSG);
                return r;
        }
        return 0;
}

/* Next cluster, 0 at end of chain, or -EBADMSG (free, bad or out-of-range entry). */
static int64_t fat_next(const fat_volume *v, uint32_t c) {
        uint32_t n;
        if (v->type == 12) {
                size_t o = (size_t) c + c / 2;
                uint16_t w = le16(v->fat + o); /* fat_len covers (n+2)*3/2+1 */
                n = (c & 1) ? (w >> 4) : (w & 0xFFF);
                if (n >= 0xFF8)
                        return 0;
        } else if (v->type == 16) {
                n = le16(v->fat + (size_t) c * 2);
                if (n >= 0xFFF8)
                        return 0;
        } else {
                n = le32(v->fat + (size_t) c * 4) & 0x0FFFFFFF;
                if (n >= 0x0FFFFFF8)
                        return 0;
        }
        if (n < 2 || n > v->n_clusters + 1)
                return -EBADMSG;
        return n;
}

/* Reads up to `len` bytes of the chain starting at `first` (len = UINT64_MAX: the whole chain,
 * bounded by max). */
static int fat_read_chain(const fat_volume *v, uint32_t first, uint64_t len, size_t max, uint8_t **ret,
                          size_t *ret_len, const char **ret_reason) {
        bool whole = len == UINT64_MAX;
        if (!whole && len > max)
                REASON("FAT: file larger than allowed", -EFBIG);
        size_t cap = whole ? 0 : (size_t) len;
        _cleanup_free_ uint8_t *buf = malloc(cap ? cap : 1);
        if (!buf)
                return -ENOMEM;
        size_t got = 0;
        uint32_t c = first;
        uint32_t steps = 0;
        while (whole || got < len) {
                if (c < 2 || c > v->n_clusters + 1)
                        REASON("FAT: cluster number out of range", -EBADMSG);
                if (++steps > v->n_clusters)
                        REASON("FAT: cluster chain loops", -EBADMSG);
                size_t chunk = v->cluster_size;
                if (!whole && len - got < chunk)
                        chunk = (size_t) (len - got);
                if (whole) {
                        if (got > max || max - got < chunk)
                                REASON("FAT: directory larger than allowed", -EFBIG);
                        uint8_t *nb = realloc(buf, got + chunk);
                        if (!nb)
                                return -ENOMEM;
                        buf = nb;
                }
                uint64_t sector = v->first_data_sector + (uint64_t) (c - 2) * v->sectors_per_cluster;
                int r = src_read(v->src, v->base + sector * v->bytes_per_sector, buf + got, chunk);
                if (r == -ERANGE)
                        REASON("FAT: cluster beyond the end of the image", -EBADMSG);
                if (r < 0)
                        return r;
                got += chunk;
                int64_t n = fat_next(v, c);
                if (n < 0)
                        REASON("FAT: bad or free cluster inside a chain", -EBADMSG);
                if (n == 0)
                        break;
                c = (uint32_t) n;
        }
        if (!whole && got < len)
                REASON("FAT: cluster chain shorter than the file size", -EBADMSG);
        *ret = TAKE_PTR(buf);
        *ret_len = got;
        return 0;
}

static uint8_t lfn_checksum(const uint8_t *short_name) {
        uint8_t sum = 0;
        for (int i = 0; i < 11; i++)
                sum = (uint8_t) (((sum & 1) << 7) + (sum >> 1) + short_name[i]);
        return sum;
}

/* "NAME    EXT" -> "NAME.EXT" */
static void short_name_str(const uint8_t *e, char out[13]) {
        size_t k = 0;
        for (int i = 0; i < 8 && e[i] != ' '; i++)
                out[k++] = (char) (i == 0 && e[0] == 0x05 ? 0xE5 : e[i]);
        if (e[8] != ' ') {
                out[k++] = '.';
                for (int i = 8; i < 11 && e[i] != ' '; i++)
                        out[k++] = (char) e[i];
        }
        out[k] = 0;
}

/* Finds `name` in a directory buffer; returns the 32-byte entry or NULL. */
static const uint8_t *fat_dir_find(const uint8_t *dir, size_t len, const char *name, size_t name_len) {
        char lfn[256];
        bool lfn_valid = false;
        uint8_t lfn_sum = 0;
        for (size_t off = 0; len - off >= 32; off += 32) {
                const uint8_t *e = dir + off;
                if (e[0] == 0x00)
                        break;
                if (e[0] == 0xE5) {
                        lfn_valid = false;
                        continue;
                }
                if ((e[11] & 0x3F) == 0x0F) {
                        /* fatgen103 §7: long-name entries precede their short entry, last first. */
                        unsigned ord = e[0] & 0x1F;
                        if (ord == 0 || ord > 20) {
                                lfn_valid = false;
                                continue;
                        }
                        if (e[0] & 0x40) {
                                memset(lfn, 0, sizeof(lfn));
                                lfn_valid = true;
                                lfn_sum = e[13];
                        } else if (!lfn_valid || e[13] != lfn_sum) {
                                lfn_valid = false;
                                continue;
                        }
                        static const uint8_t pos[13] = { 1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30 };
                        for (unsigned i = 0; i < 13; i++) {
                                uint16_t ch = le16(e + pos[i]);
                                size_t at = (ord - 1) * 13 + i;
                                if (at >= sizeof(lfn) - 1)
                                        break;
                                if (ch == 0 || ch == 0xFFFF)
                                        continue;
                                lfn[at] = ch < 0x80 ? (char) ch : '?'; /* non-ASCII never matches */
                        }
                        continue;
                }
                if (e[11] & 0x08) { /* volume label */
                        lfn_valid = false;
                        continue;
                }
                char sn[13];
                short_name_str(e, sn);
                bool match = strlen(sn) == name_len && strncasecmp(sn, name, name_len) == 0;
                if (!match && lfn_valid && lfn_sum == lfn_checksum(e))
                        match = strlen(lfn) == name_len && strncasecmp(lfn, name, name_len) == 0;
                lfn_valid = false;
                if (match)
                        return e;
        }
        return NULL;
}

int fat_read_file(const gpt_source *src, uint64_t offset, uint64_t size, const char *path, size_t max_size,
                  uint8_t **ret, size_t *ret_len, const char **ret_reason) {
        if (!src || !src->read || !path || !ret || !ret_len)
                return -EINVAL;
        fat_volume v;
        int r = fat_open(&v, src, offset, size, ret_reason);
        if (r < 0)
                return r;
        _cleanup_free_ _unused_ uint8_t *fat = v.fat; /* freed at scope exit */

        /* Root directory: a fixed region on FAT12/16, a cluster chain on FAT32. */
        _cleanup_free_ uint8_t *dir = NULL;
        size_t dir_len = 0;
        if (v.type == 32)
                r = fat_read_chain(&v, v.root_cluster, UINT64_MAX, FAT_MAX_DIR, &dir, &dir_len, ret_reason);
        else {
                dir_len = (size_t) v.root_dir_entries * 32;
                dir = malloc(dir_len);
                if (!dir)
                        return -ENOMEM;
                r = src_read(src, offset + v.root_dir_sector * v.bytes_per_sector, dir, dir_len);
                if (r == -ERANGE)
                        REASON("FAT: root directory beyond the end of the image", -EBADMSG);
        }
        if (r < 0)
                return r;

        const char *p = path;
        unsigned depth = 0;
        for (;;) {
                while (*p == '/')
                        p++;
                const char *end = strchrnul(p, '/');
                size_t n = (size_t) (end - p);
                if (n == 0)
                        REASON("FAT: empty path", -EINVAL);
                if (++depth > FAT_MAX_DEPTH)
                        REASON("FAT: path too deep", -EINVAL);
                const uint8_t *e = fat_dir_find(dir, dir_len, p, n);
                if (!e)
                        REASON("FAT: path not found", -ENOENT);
                uint32_t cl = (uint32_t) le16(e + 26) | (v.type == 32 ? (uint32_t) le16(e + 20) << 16 : 0);
                bool is_dir = e[11] & 0x10;
                while (*end == '/')
                        end++;
                if (*end == 0) {
                        if (is_dir)
                                REASON("FAT: path names a directory", -EISDIR);
                        uint32_t fsize = le32(e + 28);
                        if (fsize == 0) {
                                uint8_t *empty = malloc(1);
                                if (!empty)
                                        return -ENOMEM;
                                *ret = empty;
                                *ret_len = 0;
                                return 0;
                        }
                        return fat_read_chain(&v, cl, fsize, max_size, ret, ret_len, ret_reason);
                }
                if (!is_dir)
                        REASON("FAT: path component is not a directory", -ENOTDIR);
                _cleanup_free_ uint8_t *sub = NULL;
                size_t sub_len = 0;
                r = fat_read_chain(&v, cl, UINT64_MAX, FAT_MAX_DIR, &sub, &sub_len, ret_reason);
                if (r < 0)
                        return r;
                free(dir);
                dir = TAKE_PTR(sub);
                dir_len = sub_len;
                p = end;
        }
}

int gpt_read_esp_file(const gpt_source *src, const char *path, size_t max_size, uint8_t **ret, size_t *ret_len,
                      const char **ret_reason) {
        uint64_t off, size;
        int r = gpt_find_esp(src, &off, &size, ret_reason);
        if (r < 0)
                return r;
        return fat_read_file(src, off, size, path, max_size, ret, ret_len, ret_reason);
}
