/* SPDX-License-Identifier: Apache-2.0 */
/* Replays a libFuzzer corpus without libFuzzer (systemd src/fuzz/fuzz-main.c): every file named
 * on the command line, or every regular file in a named directory, is passed once to
 * LLVMFuzzerTestOneInput. ctest runs this in the normal and the ASan+UBSan build, so every corpus
 * entry and every regression file is a test. */
#include <dirent.h>
#include <stdio.h>
#include <sys/stat.h>

#include "basic/fileio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_INPUT (16u * 1024 * 1024)

static int run_file(const char *path) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0;
        int r = read_full_file(path, FUZZ_MAX_INPUT, &buf, &len);
        if (r < 0) {
                fprintf(stderr, "%s: cannot read: %s\n", path, strerror(-r));
                return r;
        }
        (void) LLVMFuzzerTestOneInput(buf, len);
        return 0;
}

static int run_path(const char *path, unsigned *count) {
        struct stat st;
        if (stat(path, &st) < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(errno));
                return -errno;
        }
        if (!S_ISDIR(st.st_mode)) {
                (*count)++;
                return run_file(path);
        }
        DIR *d = opendir(path);
        if (!d)
                return -errno;
        int r = 0;
        struct dirent *de;
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.')
                        continue;
                char *child;
                if (asprintf(&child, "%s/%s", path, de->d_name) < 0) {
                        r = -ENOMEM;
                        break;
                }
                r = run_path(child, count);
                free(child);
                if (r < 0)
                        break;
        }
        closedir(d);
        return r;
}

int main(int argc, char **argv) {
        unsigned count = 0;
        if (argc < 2) {
                fprintf(stderr, "usage: %s CORPUS-DIR|FILE...\n", argv[0]);
                return 2;
        }
        for (int i = 1; i < argc; i++)
                if (run_path(argv[i], &count) < 0)
                        return 1;
        if (count == 0) {
                fprintf(stderr, "no corpus files found in the given paths: the corpus is missing\n");
                return 1;
        }
        printf("replayed %u inputs\n", count);
        return 0;
}
