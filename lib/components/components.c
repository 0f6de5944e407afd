/* SPDX-License-Identifier: Apache-2.0 */
/* Component download, pin check and installation (components.h). */
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <sys/stat.h>

#include "basic/encoding.h"
#include "basic/fileio.h"
#include "basic/secret.h"
#include "components/components.h"
#include "http/http.h"

#define LAYER "components"
#define DEFAULT_TIMEOUT_MS (10L * 60 * 1000)

/* The URL for messages: data: URLs are long and say nothing; cut them short. */
static void url_for_message(const char *url, char buf[96]) {
        size_t n = strlen(url);
        if (n < 80)
                snprintf(buf, 96, "%s", url);
        else
                snprintf(buf, 96, "%.60s...", url);
        for (char *p = buf; *p; p++)
                if ((unsigned char) *p < 0x20 || (unsigned char) *p >= 0x7f)
                        *p = '?';
}

static size_t max_size(const components_options *o) {
        return o && o->max_size ? o->max_size : COMPONENTS_DEFAULT_MAX_SIZE;
}

int components_parse_hash(const char *hash, uint8_t ret[32], ct_error *err) {
        size_t pl = strlen(COMPONENTS_HASH_PREFIX);
        if (!hash || strncmp(hash, COMPONENTS_HASH_PREFIX, pl) != 0)
                return ct_error_set(err, -EBADMSG, LAYER, "hash-malformed",
                                    "hash is not \"sha256:<64 hex digits>\" (other algorithms are not accepted)");
        if (strlen(hash + pl) != 64 || hex_decode_exact(hash + pl, ret, 32) < 0)
                return ct_error_set(err, -EBADMSG, LAYER, "hash-malformed", "hash is not \"sha256:<64 hex digits>\"");
        return 0;
}

int components_decode_data_url(const char *url, size_t max, uint8_t **ret, size_t *ret_len, ct_error *err) {
        if (!url || strncmp(url, "data:", 5) != 0)
                return ct_error_set(err, -EBADMSG, LAYER, "url-malformed", "not a data: URL");
        const char *comma = strchr(url + 5, ',');
        if (!comma)
                return ct_error_set(err, -EBADMSG, LAYER, "url-malformed", "data: URL has no ','");
        size_t hl = (size_t) (comma - (url + 5));
        bool b64 = hl >= 7 && memcmp(comma - 7, ";base64", 7) == 0;
        /* The media type: token characters, '/', ';', '=' only. */
        for (const char *p = url + 5; p < comma; p++) {
                char c = *p;
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      strchr("/;=+-.!#$&^_`|~", c)))
                        return ct_error_set(err, -EBADMSG, LAYER, "url-malformed",
                                            "data: URL media type has a character outside RFC 2045 tokens");
        }
        const char *data = comma + 1;
        size_t dl = strlen(data);
        if (b64) {
                if (dl / 4 * 3 > max + 3)
                        return ct_error_set(err, -EFBIG, LAYER, "too-large", "data: URL holds more than %zu bytes",
                                            max);
                uint8_t *buf = NULL;
                size_t len = 0;
                if (base64_decode(data, dl, BASE64_STD, &buf, &len) < 0)
                        return ct_error_set(err, -EBADMSG, LAYER, "url-malformed",
                                            "data: URL payload is not standard base64");
                if (len > max) {
                        free(buf);
                        return ct_error_set(err, -EFBIG, LAYER, "too-large", "data: URL holds more than %zu bytes",
                                            max);
                }
                *ret = buf;
                *ret_len = len;
                return 0;
        }
        uint8_t *buf = malloc(dl + 1);
        if (!buf)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        size_t n = 0;
        for (size_t i = 0; i < dl; i++) {
                if (data[i] == '%') {
                        int h, l;
                        if (dl - i < 3 || (h = hex_digit_value(data[i + 1])) < 0 || (l = hex_digit_value(data[i + 2])) < 0) {
                                free(buf);
                                return ct_error_set(err, -EBADMSG, LAYER, "url-malformed",
                                                    "data: URL has a bad %%-escape at offset %zu", i);
                        }
                        buf[n++] = (uint8_t) (h * 16 + l);
                        i += 2;
                } else
                        buf[n++] = (uint8_t) data[i];
        }
        if (n > max) {
                free(buf);
                return ct_error_set(err, -EFBIG, LAYER, "too-large", "data: URL holds more than %zu bytes", max);
        }
        buf[n] = 0;
        *ret = buf;
        *ret_len = n;
        return 0;
}

/* Absolute, normalised (no "", ".", ".." components, no trailing '/'), printable, bounded. */
static bool path_normalised(const char *p) {
        size_t n = strlen(p);
        if (n < 2 || n > COMPONENTS_MAX_PATH || p[0] != '/' || p[n - 1] == '/')
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) p[i] < 0x20 || p[i] == 0x7f)
                        return false;
        const char *s = p + 1;
        for (;;) {
                const char *e = strchr(s, '/');
                size_t l = e ? (size_t) (e - s) : strlen(s);
                if (l == 0 || (l == 1 && s[0] == '.') || (l == 2 && s[0] == '.' && s[1] == '.'))
                        return false;
                if (!e)
                        return true;
                s = e + 1;
        }
}

/* The allowed root that path lies strictly below, or NULL. */
static const char *root_of(const char *path, const components_options *o) {
        for (const char *const *r = o ? o->allowed_roots : NULL; r && *r; r++) {
                size_t rl = strlen(*r);
                while (rl > 1 && (*r)[rl - 1] == '/')
                        rl--;
                if (rl == 1 && (*r)[0] == '/')
                        return *r; /* "/" itself: tests only */
                if (strncmp(path, *r, rl) == 0 && path[rl] == '/' && path[rl + 1])
                        return *r;
        }
        return NULL;
}

int components_validate(const component_spec *c, size_t index, const components_options *o, ct_error *err) {
        if (!c)
                return ct_error_set(err, -EINVAL, LAYER, "internal", "component %zu: none", index);
        const char *url = c->url ? c->url : "";
        char shown[96];
        url_for_message(url, shown);
        size_t ul = strlen(url);
        if (ul == 0 || ul > COMPONENTS_MAX_URL)
                return ct_error_set(err, -EBADMSG, LAYER, "url-malformed", "component %zu: URL is empty or over %u bytes",
                                    index, COMPONENTS_MAX_URL);
        if (strncmp(url, "data:", 5) == 0) {
                if (!strchr(url, ','))
                        return ct_error_set(err, -EBADMSG, LAYER, "url-malformed", "component %zu: data: URL has no ','",
                                            index);
        } else if (strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0) {
                const char *host = url + (url[4] == 's' ? 8 : 7);
                if (!*host || *host == '/')
                        return ct_error_set(err, -EBADMSG, LAYER, "url-malformed", "component %zu: %s has no host",
                                            index, shown);
                for (const char *p = url; *p; p++)
                        if ((unsigned char) *p <= 0x20 || (unsigned char) *p >= 0x7f)
                                return ct_error_set(err, -EBADMSG, LAYER, "url-malformed",
                                                    "component %zu: URL has a space or non-ASCII character", index);
        } else
                return ct_error_set(err, -EBADMSG, LAYER, "url-scheme",
                                    "component %zu: %s: only https://, http:// and data: URLs are accepted", index,
                                    shown);
        uint8_t pin[32];
        int r = components_parse_hash(c->hash, pin, err);
        if (r < 0) {
                ct_error_prefix(err, "component %zu (%s)", index, shown);
                return r;
        }
        if (!c->install_path || !path_normalised(c->install_path))
                return ct_error_set(err, -EBADMSG, LAYER, "path-invalid",
                                    "component %zu: install path is not an absolute, normalised path (no \".\", \"..\", "
                                    "\"//\", trailing '/', control characters, at most %u bytes)",
                                    index, COMPONENTS_MAX_PATH);
        if (!root_of(c->install_path, o))
                return ct_error_set(err, -EPERM, LAYER, "path-outside-root",
                                    "component %zu: install path %s is not below an allowed root (the state disk)", index,
                                    c->install_path);
        return 0;
}

/* --- writing below a root without following symlinks --- */

/* Opens (creating 0755 as needed) the directory dir, which lies at or below root, walking one
 * component at a time with O_NOFOLLOW. Returns an O_DIRECTORY fd. */
static int open_dir_below(const char *root, const char *dir, bool create, ct_error *err) {
        _cleanup_close_ int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return ct_error_set(err, -errno, LAYER, "io", "%s: %s", root, strerror(errno));
        size_t rl = strlen(root);
        while (rl > 1 && root[rl - 1] == '/')
                rl--;
        const char *rest = rl == 1 ? dir + 1 : dir + rl;
        if (*rest == '/')
                rest++;
        _cleanup_free_ char *copy = strdup(rest);
        if (!copy)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        char *save = NULL;
        for (char *part = strtok_r(copy, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
                if (create && mkdirat(fd, part, 0755) < 0 && errno != EEXIST)
                        return ct_error_set(err, -errno, LAYER, "io", "%s: creating %s: %s", dir, part, strerror(errno));
                int nfd = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (nfd < 0) {
                        int e = errno;
                        if (e == ELOOP || e == ENOTDIR)
                                return ct_error_set(err, -EPERM, LAYER, "path-outside-root",
                                                    "%s: %s is a symlink or not a directory", dir, part);
                        return ct_error_set(err, -e, LAYER, "io", "%s: %s: %s", dir, part, strerror(e));
                }
                close(fd);
                fd = nfd;
        }
        return TAKE_FD(fd);
}

/* Writes data to name in dirfd through a private temp file, fsync, chmod mode, rename. */
static int write_file_at(int dirfd, const char *name, const uint8_t *data, size_t len, mode_t mode, const char *what,
                         ct_error *err) {
        char tmp[64];
        int fd = -1;
        for (int i = 0; i < 16 && fd < 0; i++) {
                uint32_t rnd;
                if (getentropy(&rnd, sizeof rnd) < 0)
                        return ct_error_set(err, -errno, LAYER, "io", "getentropy: %s", strerror(errno));
                snprintf(tmp, sizeof tmp, ".ct-component-%08x.tmp", rnd);
                fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
                if (fd < 0 && errno != EEXIST)
                        return ct_error_set(err, -errno, LAYER, "io", "%s: temp file: %s", what, strerror(errno));
        }
        if (fd < 0)
                return ct_error_set(err, -EEXIST, LAYER, "io", "%s: no free temp file name", what);
        int r = loop_write(fd, data, len);
        if (r >= 0 && fsync(fd) < 0)
                r = -errno;
        if (r >= 0 && fchmod(fd, mode) < 0)
                r = -errno;
        close(fd);
        if (r >= 0 && renameat(dirfd, tmp, dirfd, name) < 0)
                r = -errno;
        if (r < 0) {
                (void) unlinkat(dirfd, tmp, 0);
                return ct_error_set(err, r, LAYER, "io", "%s: %s", what, strerror(-r));
        }
        return 0;
}

/* --- archives --- */

static int archive_open_gz(const uint8_t *data, size_t len, size_t index, struct archive **ret, ct_error *err) {
        struct archive *a = archive_read_new();
        if (!a)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        if (archive_read_support_filter_gzip(a) != ARCHIVE_OK || archive_read_support_format_tar(a) != ARCHIVE_OK) {
                archive_read_free(a);
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "libarchive has no gzip or tar support");
        }
        if (archive_read_open_memory(a, data, len) != ARCHIVE_OK) {
                int r = ct_error_set(err, -EBADMSG, LAYER, "archive-malformed", "component %zu: %.200s", index,
                                     archive_error_string(a) ?: "not a tar.gz");
                archive_read_free(a);
                return r;
        }
        *ret = a;
        return 0;
}
static void archive_read_freep(struct archive **a) {
        if (*a)
                archive_read_free(*a);
}

/* Entry names are relative and normalised after dropping a leading "./" (tar c . writes them). */
static const char *entry_name(struct archive_entry *e) {
        const char *n = archive_entry_pathname(e);
        if (!n)
                return NULL;
        while (n[0] == '.' && n[1] == '/')
                n += 2;
        return n;
}

static bool rel_path_ok(const char *n) {
        size_t l = strlen(n);
        if (l == 0 || l > COMPONENTS_MAX_PATH || n[0] == '/')
                return false;
        if (n[l - 1] == '/')
                l--; /* directories may end in '/' */
        const char *s = n, *end = n + l;
        while (s < end) {
                const char *e = memchr(s, '/', (size_t) (end - s));
                size_t cl = e ? (size_t) (e - s) : (size_t) (end - s);
                if (cl == 0 || (cl == 1 && s[0] == '.') || (cl == 2 && s[0] == '.' && s[1] == '.'))
                        return false;
                for (size_t i = 0; i < cl; i++)
                        if ((unsigned char) s[i] < 0x20)
                                return false;
                if (!e)
                        break;
                s = e + 1;
        }
        return true;
}

/* A symlink at `name` pointing to `target` stays inside the extraction directory. */
static bool symlink_inside(const char *name, const char *target) {
        if (!target || !*target || target[0] == '/' || strlen(target) > COMPONENTS_MAX_PATH)
                return false;
        int depth = 0; /* directory depth of the link itself */
        for (const char *p = name; *p; p++)
                if (*p == '/' && p[1])
                        depth++;
        const char *s = target;
        for (;;) {
                const char *e = strchr(s, '/');
                size_t cl = e ? (size_t) (e - s) : strlen(s);
                if (cl == 2 && s[0] == '.' && s[1] == '.') {
                        if (--depth < 0)
                                return false;
                } else if (cl > 0 && !(cl == 1 && s[0] == '.'))
                        depth++;
                if (!e)
                        return true;
                s = e + 1;
        }
}

typedef struct name_list {
        char **v;
        size_t n;
} name_list;
static void name_list_done(name_list *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i]);
        free(l->v);
}

/* name lies below (not at) one of the symlinks seen so far: writing it would follow the link. */
static bool below_symlink(const name_list *links, const char *name) {
        for (size_t i = 0; i < links->n; i++) {
                size_t l = strlen(links->v[i]);
                if (strncmp(name, links->v[i], l) == 0 && name[l] == '/')
                        return true;
        }
        return false;
}

/* Pass 1: every entry is checked before anything is written. */
static int archive_check(const uint8_t *data, size_t len, size_t max_total, size_t index, ct_error *err) {
        _cleanup_(archive_read_freep) struct archive *a = NULL;
        int ro = archive_open_gz(data, len, index, &a, err);
        if (ro < 0)
                return ro;
        struct archive_entry *e;
        size_t n = 0, total = 0;
        _cleanup_(name_list_done) name_list links = { 0 };
        int r;
        while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
                if (++n > COMPONENTS_MAX_ARCHIVE_ENTRIES)
                        return ct_error_set(err, -EFBIG, LAYER, "too-large", "component %zu: more than %u entries",
                                            index, COMPONENTS_MAX_ARCHIVE_ENTRIES);
                const char *name = entry_name(e);
                const char *raw = archive_entry_pathname(e);
                if (!name || !*name) {
                        if (raw && (streq(raw, ".") || streq(raw, "./")) && archive_entry_filetype(e) == AE_IFDIR)
                                continue; /* the archive's own root */
                        return ct_error_set(err, -EPERM, LAYER, "archive-unsafe", "component %zu: entry %zu has no name",
                                            index, n);
                }
                if (!rel_path_ok(name))
                        return ct_error_set(err, -EPERM, LAYER, "archive-unsafe",
                                            "component %zu: entry \"%.200s\" is absolute or has \"..\" or \".\"", index,
                                            raw);
                if (below_symlink(&links, name))
                        return ct_error_set(err, -EPERM, LAYER, "archive-unsafe",
                                            "component %zu: entry \"%.200s\" lies through a symlink of the archive", index,
                                            raw);
                if (archive_entry_hardlink(e))
                        return ct_error_set(err, -EPERM, LAYER, "archive-unsafe",
                                            "component %zu: entry \"%.200s\" is a hard link", index, raw);
                switch (archive_entry_filetype(e)) {
                case AE_IFREG: {
                        la_int64_t sz = archive_entry_size(e);
                        if (sz < 0 || (uint64_t) sz > max_total - total)
                                return ct_error_set(err, -EFBIG, LAYER, "too-large",
                                                    "component %zu: archive unpacks to more than %zu bytes", index,
                                                    max_total);
                        total += (size_t) sz;
                        break;
                }
                case AE_IFDIR:
                        break;
                case AE_IFLNK:
                        if (!symlink_inside(name, archive_entry_symlink(e)))
                                return ct_error_set(err, -EPERM, LAYER, "archive-unsafe",
                                                    "component %zu: symlink \"%.200s\" points outside the target", index,
                                                    raw);
                        if (links.n == COMPONENTS_MAX_ARCHIVE_ENTRIES)
                                return ct_error_set(err, -EFBIG, LAYER, "too-large", "component %zu: too many symlinks",
                                                    index);
                        if (!links.v && !(links.v = calloc(COMPONENTS_MAX_ARCHIVE_ENTRIES, sizeof(char *))))
                                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
                        {
                                char *copy = strdup(name);
                                size_t cl = copy ? strlen(copy) : 0;
                                if (!copy)
                                        return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
                                while (cl > 0 && copy[cl - 1] == '/')
                                        copy[--cl] = 0;
                                links.v[links.n++] = copy;
                        }
                        break;
                default:
                        return ct_error_set(err, -EPERM, LAYER, "archive-unsafe",
                                            "component %zu: entry \"%.200s\" is a device, FIFO or socket", index, raw);
                }
        }
        if (r != ARCHIVE_EOF)
                return ct_error_set(err, -EBADMSG, LAYER, "archive-malformed", "component %zu: %.200s", index,
                                    archive_error_string(a) ?: "not a tar.gz");
        return 0;
}

/* Splits "a/b/c" into the directory fd of "a/b" (created below dirfd, O_NOFOLLOW) and "c". */
static int open_parent_at(int dirfd, const char *name, char **ret_base, ct_error *err) {
        _cleanup_free_ char *copy = strdup(name);
        if (!copy)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        size_t l = strlen(copy);
        if (l > 0 && copy[l - 1] == '/')
                copy[--l] = 0;
        char *slash = strrchr(copy, '/');
        _cleanup_close_ int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
        if (fd < 0)
                return ct_error_set(err, -errno, LAYER, "io", "dup: %s", strerror(errno));
        const char *base = copy;
        if (slash) {
                *slash = 0;
                base = slash + 1;
                char *save = NULL;
                for (char *part = strtok_r(copy, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
                        if (mkdirat(fd, part, 0755) < 0 && errno != EEXIST)
                                return ct_error_set(err, -errno, LAYER, "io", "%s: %s", name, strerror(errno));
                        int nfd = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (nfd < 0)
                                return ct_error_set(err, -EPERM, LAYER, "archive-unsafe",
                                                    "%s: %s is a symlink or not a directory", name, part);
                        close(fd);
                        fd = nfd;
                }
        }
        char *b = strdup(base);
        if (!b)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        *ret_base = b;
        return TAKE_FD(fd);
}

/* Pass 2: extraction into dirfd (after pass 1 accepted every entry). */
static int archive_extract(const uint8_t *data, size_t len, int dirfd, size_t max_total, size_t index, ct_error *err) {
        _cleanup_(archive_read_freep) struct archive *a = NULL;
        int ro = archive_open_gz(data, len, index, &a, err);
        if (ro < 0)
                return ro;
        struct archive_entry *e;
        int r;
        size_t total = 0;
        while ((r = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
                const char *name = entry_name(e);
                if (!name || !*name)
                        continue;
                _cleanup_free_ char *base = NULL;
                _cleanup_close_ int pfd = open_parent_at(dirfd, name, &base, err);
                if (pfd < 0)
                        return pfd;
                mode_t mode = archive_entry_perm(e) & 0755; /* no setuid/setgid/sticky, no group/other write */
                switch (archive_entry_filetype(e)) {
                case AE_IFDIR:
                        if (mkdirat(pfd, base, mode | 0700) < 0 && errno != EEXIST)
                                return ct_error_set(err, -errno, LAYER, "io", "component %zu: %s: %s", index, name,
                                                    strerror(errno));
                        break;
                case AE_IFLNK:
                        (void) unlinkat(pfd, base, 0);
                        if (symlinkat(archive_entry_symlink(e), pfd, base) < 0)
                                return ct_error_set(err, -errno, LAYER, "io", "component %zu: %s: %s", index, name,
                                                    strerror(errno));
                        break;
                case AE_IFREG: {
                        la_int64_t sz = archive_entry_size(e);
                        if (sz < 0 || (uint64_t) sz > max_total - total)
                                return ct_error_set(err, -EFBIG, LAYER, "too-large", "component %zu: archive too large",
                                                    index);
                        _cleanup_free_ uint8_t *buf = malloc((size_t) sz + 1);
                        if (!buf)
                                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
                        la_ssize_t got = archive_read_data(a, buf, (size_t) sz);
                        if (got != sz)
                                return ct_error_set(err, -EBADMSG, LAYER, "archive-malformed", "component %zu: %s: short read",
                                                    index, name);
                        total += (size_t) sz;
                        int w = write_file_at(pfd, base, buf, (size_t) sz, mode, name, err);
                        if (w < 0)
                                return w;
                        break;
                }
                default:
                        return ct_error_set(err, -EPERM, LAYER, "archive-unsafe", "component %zu: %s", index, name);
                }
        }
        if (r != ARCHIVE_EOF)
                return ct_error_set(err, -EBADMSG, LAYER, "archive-malformed", "component %zu: %.200s", index,
                                    archive_error_string(a) ?: "not a tar.gz");
        return 0;
}

/* --- install --- */

static int fetch(const component_spec *c, size_t index, const components_options *o, uint8_t **ret, size_t *ret_len,
                 ct_error *err) {
        char shown[96];
        url_for_message(c->url, shown);
        if (strncmp(c->url, "data:", 5) == 0) {
                int r = components_decode_data_url(c->url, max_size(o), ret, ret_len, err);
                if (r < 0)
                        ct_error_prefix(err, "component %zu", index);
                return r;
        }
        http_options ho = {
                .max_size = max_size(o),
                .connect_timeout_ms = o && o->connect_timeout_ms ? o->connect_timeout_ms : 10000,
                .timeout_ms = o && o->timeout_ms ? o->timeout_ms : DEFAULT_TIMEOUT_MS,
        };
        _cleanup_free_ char *why = NULL;
        int r = http_get(c->url, &ho, ret, ret_len, &why);
        if (r == -EFBIG)
                return ct_error_set(err, r, LAYER, "too-large", "component %zu: %s: larger than %zu bytes", index, shown,
                                    ho.max_size);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "fetch-failed", "component %zu: %.300s", index,
                                    why ? why : strerror(-r));
        return 0;
}

int components_install(const component_spec *c, size_t index, const components_options *o, ct_error *err) {
        int r = components_validate(c, index, o, err);
        if (r < 0)
                return r;
        uint8_t pin[32], got[32];
        (void) components_parse_hash(c->hash, pin, NULL);
        _cleanup_free_ uint8_t *data = NULL;
        size_t len = 0;
        if ((r = fetch(c, index, o, &data, &len, err)) < 0)
                return r;
        if (!EVP_Digest(data, len, got, NULL, EVP_sha256(), NULL))
                return ct_error_set(err, -EIO, LAYER, "internal", "SHA-256 failed");
        if (!ct_memeq(pin, 32, got, 32)) {
                char shown[96];
                url_for_message(c->url, shown);
                _cleanup_free_ char *hex = hex_encode(got, 32);
                return ct_error_set(err, -EPERM, LAYER, "hash-mismatch",
                                    "component %zu: %s has sha256:%s, pinned %s; nothing was installed", index, shown,
                                    hex ? hex : "?", c->hash);
        }

        const char *root = root_of(c->install_path, o);
        if (c->extract) {
                size_t max_total = o && o->max_extract_size ? o->max_extract_size : 4 * max_size(o);
                if ((r = archive_check(data, len, max_total, index, err)) < 0)
                        return r;
                _cleanup_close_ int dfd = open_dir_below(root, c->install_path, true, err);
                if (dfd < 0)
                        return dfd;
                return archive_extract(data, len, dfd, max_total, index, err);
        }
        _cleanup_free_ char *dir = strdup(c->install_path);
        if (!dir)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        char *slash = strrchr(dir, '/');
        const char *base = c->install_path + (slash - dir) + 1;
        if (slash == dir)
                dir[1] = 0;
        else
                *slash = 0;
        _cleanup_close_ int dfd = open_dir_below(root, dir, true, err);
        if (dfd < 0)
                return dfd;
        return write_file_at(dfd, base, data, len, 0755, c->install_path, err);
}
