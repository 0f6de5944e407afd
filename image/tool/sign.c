/* SPDX-License-Identifier: Apache-2.0 */
/* constellation-image sign --key KEY.pem FILE [-o FILE.sig] and
 * constellation-image verify --key PUB.pem [--signature FILE.sig] FILE: cosign blob signatures
 * (reference constellation.md §5.2) through lib/crypto, the code the provider verifies with. */
#include <stdio.h>

#include "basic/cleanup-openssl.h"
#include "basic/fileio.h"
#include "commands.h"
#include "crypto/cosign.h"

#define KEY_MAX (64 * 1024)
#define BLOB_MAX (16 * 1024 * 1024)

static int load_key(const char *path, bool private_key, EVP_PKEY **ret) {
        _cleanup_free_ uint8_t *pem = NULL;
        size_t len = 0;
        int r = read_full_file(path, KEY_MAX, &pem, &len);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", path, strerror(-r));
                return IMAGE_EXIT_IO;
        }
        r = private_key ? cosign_load_private_key((const char *) pem, len, ret)
                        : cosign_load_public_key((const char *) pem, len, ret);
        explicit_bzero(pem, len);
        if (r < 0) {
                fprintf(stderr, "%s: not an unencrypted ECDSA P-256 %s key in PEM\n", path,
                        private_key ? "private" : "public");
                return IMAGE_EXIT_REJECTED;
        }
        return 0;
}

/* Signs `blob` with the private key at key_path into sig_path (base64 + newline). */
int image_sign_file(const char *key_path, const uint8_t *blob, size_t len, const char *sig_path);
int image_sign_file(const char *key_path, const uint8_t *blob, size_t len, const char *sig_path) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        int rc = load_key(key_path, true, &key);
        if (rc != 0)
                return rc;
        _cleanup_free_ char *sig = NULL;
        int r = cosign_sign_blob(blob, len, key, &sig);
        if (r < 0) {
                fprintf(stderr, "%s: signing failed: %s\n", key_path, strerror(-r));
                return IMAGE_EXIT_IO;
        }
        size_t sl = strlen(sig);
        _cleanup_free_ char *line = malloc(sl + 2);
        if (!line)
                return IMAGE_EXIT_IO;
        memcpy(line, sig, sl);
        line[sl] = '\n';
        line[sl + 1] = 0;
        r = write_file_atomic(sig_path, line, sl + 1, 0644);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", sig_path, strerror(-r));
                return IMAGE_EXIT_IO;
        }
        return 0;
}

int image_cmd_sign(int argc, char **argv) {
        const char *key = NULL, *file = NULL, *out = NULL;
        for (int i = 1; i < argc; i++) {
                if ((streq(argv[i], "--key") || streq(argv[i], "-o") || streq(argv[i], "--output")) && i + 1 < argc) {
                        if (streq(argv[i], "--key"))
                                key = argv[++i];
                        else
                                out = argv[++i];
                } else if (streq(argv[i], "--help") || streq(argv[i], "-h")) {
                        puts("Usage: constellation-image sign --key PRIVATE.pem [-o FILE.sig] FILE\n"
                             "Writes base64(ECDSA P-256 ASN.1 signature over SHA-256(FILE)) to FILE.sig,\n"
                             "as `cosign sign-blob --key` does.");
                        return 0;
                } else if (argv[i][0] == '-' || file) {
                        fprintf(stderr, "sign: unexpected argument \"%s\"\n", argv[i]);
                        return IMAGE_EXIT_USAGE;
                } else
                        file = argv[i];
        }
        if (!key || !file) {
                fprintf(stderr, "Usage: constellation-image sign --key PRIVATE.pem [-o FILE.sig] FILE\n");
                return IMAGE_EXIT_USAGE;
        }
        _cleanup_free_ char *def = NULL;
        if (!out) {
                if (asprintf(&def, "%s.sig", file) < 0)
                        return IMAGE_EXIT_IO;
                out = def;
        }
        _cleanup_free_ uint8_t *blob = NULL;
        size_t len = 0;
        int r = read_full_file(file, BLOB_MAX, &blob, &len);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", file, strerror(-r));
                return IMAGE_EXIT_IO;
        }
        return image_sign_file(key, blob, len, out);
}

int image_cmd_verify(int argc, char **argv) {
        const char *key = NULL, *file = NULL, *sig = NULL;
        for (int i = 1; i < argc; i++) {
                if ((streq(argv[i], "--key") || streq(argv[i], "--signature")) && i + 1 < argc) {
                        if (streq(argv[i], "--key"))
                                key = argv[++i];
                        else
                                sig = argv[++i];
                } else if (streq(argv[i], "--help") || streq(argv[i], "-h")) {
                        puts("Usage: constellation-image verify --key PUBLIC.pem [--signature FILE.sig] FILE");
                        return 0;
                } else if (argv[i][0] == '-' || file) {
                        fprintf(stderr, "verify: unexpected argument \"%s\"\n", argv[i]);
                        return IMAGE_EXIT_USAGE;
                } else
                        file = argv[i];
        }
        if (!key || !file) {
                fprintf(stderr, "Usage: constellation-image verify --key PUBLIC.pem [--signature FILE.sig] FILE\n");
                return IMAGE_EXIT_USAGE;
        }
        _cleanup_free_ char *def = NULL;
        if (!sig) {
                if (asprintf(&def, "%s.sig", file) < 0)
                        return IMAGE_EXIT_IO;
                sig = def;
        }
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *pkey = NULL;
        int rc = load_key(key, false, &pkey);
        if (rc != 0)
                return rc;
        _cleanup_free_ uint8_t *blob = NULL, *sigbuf = NULL;
        size_t len = 0, sig_len = 0;
        int r = read_full_file(file, BLOB_MAX, &blob, &len);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", file, strerror(-r));
                return IMAGE_EXIT_IO;
        }
        r = read_full_file(sig, KEY_MAX, &sigbuf, &sig_len);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n", sig, strerror(-r));
                return IMAGE_EXIT_IO;
        }
        cosign_error err = COSIGN_OK;
        r = cosign_verify_blob(blob, len, (const char *) sigbuf, sig_len, pkey, &err);
        if (r < 0) {
                fprintf(stderr, "%s: signature %s does not verify with %s: %s\n", file, sig, key,
                        cosign_error_to_string(err));
                return IMAGE_EXIT_REJECTED;
        }
        printf("%s: signature OK\n", file);
        return 0;
}
