/* SPDX-License-Identifier: Apache-2.0 */
/* Signed attestation config updates and the init attestation configuration (lib/joinconfig): every
 * refusal has its reason; an accepted update has a newer version and enforces PCR 15 = 0. The key is
 * the data key "attestationConfigSigning" of master secret 01^32, salt 02^32 (the seeds are signed
 * with it by constellation-attest join-config sign). */
#include <stdlib.h>
#include <string.h>

#include "crypto/hkdf.h"
#include "joinconfig/joinconfig.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static secret_t *key;

static void check_pcr15(const measurements *m) {
        static const uint8_t zero[32] = { 0 };
        const measurement *p = measurements_get(m, 15);
        if (!p || p->warn_only || p->len != 32 || memcmp(p->expected, zero, 32) != 0)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        if (!key) {
                uint8_t ms[32], salt[32];
                memset(ms, 1, 32);
                memset(salt, 2, 32);
                _cleanup_secret_ secret_t *m = secret_new_copy(ms, 32), *s = secret_new_copy(salt, 32);
                if (kdf_data_key(m, s, JOINCONFIG_SIGNING_KEY_ID, 32, &key) < 0)
                        abort();
        }
        measurements m;
        uint64_t version = 0;
        ct_error err = CT_ERROR_INIT;
        if (joinconfig_update_verify(data, size, key, 0, &m, &version, &err) == 0) {
                if (version == 0 || version > JOINCONFIG_MAX_VERSION)
                        abort();
                check_pcr15(&m);
                /* the same document is a rollback once in force */
                ct_error e = CT_ERROR_INIT;
                if (joinconfig_update_verify(data, size, key, version, &m, &version, &e) == 0 ||
                    strcmp(e.reason, "version-rollback") != 0)
                        abort();
        } else if (!err.reason)
                abort();
        ct_error e3 = CT_ERROR_INIT;
        if (joinconfig_parse_attestation(data, size, &m, &e3) == 0)
                check_pcr15(&m);
        else if (!e3.reason)
                abort();
        return 0;
}
