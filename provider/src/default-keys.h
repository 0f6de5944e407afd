/* SPDX-License-Identifier: Apache-2.0 */
/* Public keys the provider trusts when the configuration names none (all public material):
 * Constellation's cosign keys (internal/constants/constants.go CosignPublicKeyReleases for ref "-"
 * and stream "stable", CosignPublicKeyDev otherwise) and the public-good Rekor log's key
 * (sigstore trusted root, rekor.sigstore.dev, logID c0d23d6a…801d). */
#pragma once

#define TF_COSIGN_KEY_RELEASES                                                   \
        "-----BEGIN PUBLIC KEY-----\n"                                           \
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEf8F1hpmwE+YCFXzjGtaQcrL6XZVT\n"     \
        "JmEe5iSLvG1SyQSAew7WdMKF6o9t8e2TFuCkzlOhhlws2OHWbiFZnFWCFw==\n"         \
        "-----END PUBLIC KEY-----\n"

#define TF_COSIGN_KEY_DEV                                                        \
        "-----BEGIN PUBLIC KEY-----\n"                                           \
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAELcPl4Ik+qZuH4K049wksoXK/Os3Z\n"     \
        "b92PDCpM7FZAINQF88s1TZS/HmRXYk62UJ4eqPduvUnJmXhNikhLbMi6fw==\n"         \
        "-----END PUBLIC KEY-----\n"

#define TF_REKOR_PUBLIC_GOOD_KEY                                                 \
        "-----BEGIN PUBLIC KEY-----\n"                                           \
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE2G2Y+2tabdTV5BcGiBIx0a9fAFwr\n"     \
        "kBbmLSGtks4L3qX6yYY0zufBnhC8Ur/iy55GhWP/9A/bY2LhC30M9+RYtw==\n"         \
        "-----END PUBLIC KEY-----\n"
