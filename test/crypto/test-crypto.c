/* SPDX-License-Identifier: Apache-2.0 */
/* Known answers: RFC 5869 test cases 1-3 (SHA-256) and Constellation's HKDF, measurement-secret and
 * cluster-ID vectors (reference constellation.md §5.4, §6); cosign signatures from Constellation's
 * and sigstore's own tests, a real Edgeless release signature, and every rejection with its reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <stdio.h>

#include "basic/cleanup-openssl.h"
#include "basic/encoding.h"
#include "basic/fileio.h"
#include "crypto/cosign.h"
#include "crypto/hkdf.h"

static const char *datadir;

static uint8_t *load(const char *name, size_t *len) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", datadir, name);
        uint8_t *buf;
        assert_int_equal(read_full_file(path, 1 << 20, &buf, len), 0);
        return buf;
}

static void unhex(const char *hex, uint8_t *out, size_t len) {
        assert_int_equal(hex_decode_exact(hex, out, len), 0);
}

static void expect_hkdf(const char *ikm, const char *salt, const char *info, size_t l, const char *okm) {
        uint8_t *i, *s, *n;
        size_t il, sl, nl;
        assert_int_equal(hex_decode(ikm, strlen(ikm), &i, &il), 0);
        assert_int_equal(hex_decode(salt, strlen(salt), &s, &sl), 0);
        assert_int_equal(hex_decode(info, strlen(info), &n, &nl), 0);
        _cleanup_secret_ secret_t *out = NULL;
        assert_int_equal(hkdf_sha256(i, il, s, sl, n, nl, l, &out), 0);
        _cleanup_free_ char *hex = hex_encode(out->data, out->len);
        assert_string_equal(hex, okm);
        free(i);
        free(s);
        free(n);
}

static void test_rfc5869(void **state) {
        /* RFC 5869 Appendix A.1-A.3. */
        expect_hkdf("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9",
                    42, "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
        expect_hkdf("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f"
                    "303132333435363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f",
                    "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f808182838485868788898a8b8c8d8e8f"
                    "909192939495969798999a9b9c9d9e9fa0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
                    "b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
                    "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
                    82,
                    "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09"
                    "da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87");
        expect_hkdf("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "", "", 42,
                    "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
}

static secret_t *test_secret_from_hex(const char *hex) {
        uint8_t buf[64];
        size_t n = strlen(hex) / 2;
        unhex(hex, buf, n);
        return secret_new_copy(buf, n);
}

static void test_constellation_vectors(void **state) {
        /* internal/crypto/testvector: HKDFZero, HKDF0xFF, HKDFMeasurementSecret, clusterID. */
        _cleanup_secret_ secret_t *zero = secret_new(32);
        _cleanup_secret_ secret_t *k1 = NULL;
        assert_int_equal(kdf_data_key(zero, zero, "00000000-0000-0000-0000-000000000000", 32, &k1), 0);
        _cleanup_free_ char *h1 = hex_encode(k1->data, 32);
        assert_string_equal(h1, "2b5c829f691bfd4232f8aac464bccc07e605c7c8e82cbca09837e86d0b6d0665");

        _cleanup_secret_ secret_t *ff = secret_new(32);
        memset(ff->data, 0xff, 32);
        _cleanup_secret_ secret_t *k2 = NULL;
        assert_int_equal(kdf_data_key(ff, ff, "ffffffff-ffff-ffff-ffff-ffffffffffff", 32, &k2), 0);
        _cleanup_free_ char *h2 = hex_encode(k2->data, 32);
        assert_string_equal(h2, "1484aa39d3415e906e07940ff215d8b1eee705d3027dba93306af4abff4f70be");

        _cleanup_secret_ secret_t *ms = test_secret_from_hex("404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f");
        _cleanup_secret_ secret_t *salt = test_secret_from_hex("606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f");
        _cleanup_secret_ secret_t *msec = NULL;
        assert_int_equal(kdf_measurement_secret(ms, salt, &msec), 0);
        _cleanup_free_ char *h3 = hex_encode(msec->data, 32);
        assert_string_equal(h3, "4790578891f3fe6cc22cb661ecdc1b7e33121b1287546a52ba33a9136719c213");

        _cleanup_secret_ secret_t *cs = test_secret_from_hex("000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
        uint8_t msalt[32], id[32], pcr15[32];
        unhex("202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f", msalt, 32);
        assert_int_equal(kdf_cluster_id(cs, msalt, 32, id), 0);
        _cleanup_free_ char *h4 = hex_encode(id, 32);
        assert_string_equal(h4, "128c164378fe8767f998fbdfe4b4d6463ec5ae1b664ea5999bc27417607ae9b6");

        /* PCR 15 = SHA-256(0^32 || SHA-256(clusterID)), computed independently here. */
        kdf_expected_pcr15(id, pcr15);
        uint8_t buf[64] = { 0 }, want[32];
        SHA256(id, 32, buf + 32);
        SHA256(buf, 64, want);
        assert_memory_equal(pcr15, want, 32);

        secret_t *bad;
        assert_int_equal(hkdf_sha256("x", 1, NULL, 0, NULL, 0, 0, &bad), -EINVAL);
        assert_int_equal(hkdf_sha256("x", 1, NULL, 0, NULL, 0, KDF_MAX_LENGTH + 1, &bad), -EINVAL);
}

static EVP_PKEY *pubkey(const char *name) {
        size_t len;
        _cleanup_free_ uint8_t *pem = load(name, &len);
        EVP_PKEY *k = NULL;
        assert_int_equal(cosign_load_public_key((const char *) pem, len, &k), 0);
        return k;
}

static void expect_blob(const char *blob_name, const char *sig_name, const char *key_name, int want_r,
                        cosign_error want) {
        size_t bl, sl;
        _cleanup_free_ uint8_t *blob = load(blob_name, &bl);
        _cleanup_free_ uint8_t *sig = load(sig_name, &sl);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = pubkey(key_name);
        cosign_error e = -1;
        assert_int_equal(cosign_verify_blob(blob, bl, (const char *) sig, sl, k, &e), want_r);
        assert_int_equal(e, want);
}

static void test_cosign_real_signatures(void **state) {
        /* Constellation's measurements test: the measurements file verifies with the test key. */
        expect_blob("measurements.json", "measurements.json.sig", "cosign-test.pub", 0, COSIGN_OK);
        /* The broken signature's DER header is zeroed: refused as a malformed signature file. */
        expect_blob("measurements.json", "measurements.json.sig.broken", "cosign-test.pub", -EBADMSG,
                    COSIGN_BAD_SIGNATURE_FILE);
        expect_blob("not-json.txt", "not-json.txt.sig", "cosign-test.pub", 0, COSIGN_OK);
        expect_blob("content.txt", "content.txt.sig", "sigstore-test.pub", 0, COSIGN_OK);
        /* sigstore's cosign blob with its key. */
        expect_blob("rekor-a.txt", "rekor-a.txt.sig", "rekor-key.pub", 0, COSIGN_OK);
        /* Right signature, wrong key; right key, other content. */
        expect_blob("measurements.json", "measurements.json.sig", "sigstore-test.pub", -EBADMSG,
                    COSIGN_SIGNATURE_MISMATCH);
        expect_blob("content.txt", "measurements.json.sig", "cosign-test.pub", -EBADMSG, COSIGN_SIGNATURE_MISMATCH);

        /* A real Edgeless release signature (Rekor log index 3477047) over a binary's digest. */
        size_t hl, sl;
        _cleanup_free_ uint8_t *hexd = load("release-cli-rekor3477047.sha256.hex", &hl);
        _cleanup_free_ uint8_t *sig = load("release-cli-rekor3477047.sig", &sl);
        uint8_t digest[32];
        hexd[64] = 0;
        unhex((const char *) hexd, digest, 32);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *rel = pubkey("edgeless-release.pub");
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *dev = pubkey("edgeless-dev.pub");
        cosign_error e;
        assert_int_equal(cosign_verify_digest(digest, (const char *) sig, sl, rel, &e), 0);
        assert_int_equal(cosign_verify_digest(digest, (const char *) sig, sl, dev, &e), -EBADMSG);
        assert_int_equal(e, COSIGN_SIGNATURE_MISMATCH);
}

static void test_cosign_rejections(void **state) {
        size_t bl;
        _cleanup_free_ uint8_t *blob = load("measurements.json", &bl);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = pubkey("cosign-test.pub");
        cosign_error e;
        assert_int_equal(cosign_verify_blob(blob, bl, "not base64!", 11, k, &e), -EBADMSG);
        assert_int_equal(e, COSIGN_BAD_SIGNATURE_FILE);
        assert_int_equal(cosign_verify_blob(blob, bl, "aGVsbG8=", 8, k, &e), -EBADMSG); /* "hello": not DER */
        assert_int_equal(e, COSIGN_BAD_SIGNATURE_FILE);
        assert_int_equal(cosign_verify_blob(blob, bl, "", 0, k, &e), -EBADMSG);
        assert_int_equal(e, COSIGN_BAD_SIGNATURE_FILE);
        assert_int_equal(cosign_verify_blob(blob, bl, "aGVsbG8=", 8, NULL, &e), -EBADMSG);
        assert_int_equal(e, COSIGN_BAD_KEY);
        /* Keys: garbage and a non-P-256 key are refused. */
        EVP_PKEY *bad = NULL;
        assert_int_equal(cosign_load_public_key("garbage", 7, &bad), -EBADMSG);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *p384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
        _cleanup_(BIO_freep) BIO *bio = BIO_new(BIO_s_mem());
        PEM_write_bio_PUBKEY(bio, p384);
        char *pem;
        long pl = BIO_get_mem_data(bio, &pem);
        assert_int_equal(cosign_load_public_key(pem, (size_t) pl, &bad), -EKEYREJECTED);
        assert_string_equal(cosign_error_to_string(COSIGN_SIGNATURE_MISMATCH), "signature does not match the file and key");
}

static void test_cosign_sign_roundtrip(void **state) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
        const char *blob = "{\"measurements\":{}}";
        _cleanup_free_ char *sig = NULL;
        assert_int_equal(cosign_sign_blob((const uint8_t *) blob, strlen(blob), key, &sig), 0);
        cosign_error e;
        assert_int_equal(cosign_verify_blob((const uint8_t *) blob, strlen(blob), sig, strlen(sig), key, &e), 0);
        /* One changed byte of the blob fails. */
        assert_int_equal(cosign_verify_blob((const uint8_t *) "{\"measurements\":{ }", strlen(blob), sig, strlen(sig), key, &e),
                         -EBADMSG);
        assert_int_equal(e, COSIGN_SIGNATURE_MISMATCH);
        /* The same signature read back with a trailing newline (as cosign writes files) verifies. */
        char withnl[512];
        snprintf(withnl, sizeof(withnl), "%s\n", sig);
        assert_int_equal(cosign_verify_blob((const uint8_t *) blob, strlen(blob), withnl, strlen(withnl), key, &e), 0);
}

int main(int argc, char **argv) {
        datadir = argc > 1 ? argv[1] : "data";
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_rfc5869),
                cmocka_unit_test(test_constellation_vectors),
                cmocka_unit_test(test_cosign_real_signatures),
                cmocka_unit_test(test_cosign_rejections),
                cmocka_unit_test(test_cosign_sign_roundtrip),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
