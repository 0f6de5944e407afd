/* SPDX-License-Identifier: Apache-2.0 */
/* What the provider reads from Terraform's environment before the handshake: the magic cookie,
 * PLUGIN_PROTOCOL_VERSIONS and the PLUGIN_CLIENT_CERT PEM. Input: three NUL-separated fields. */
#include "plugin.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char *copy = malloc(size + 1);
        if (!copy)
                return 0;
        memcpy(copy, data, size);
        copy[size] = 0;
        const char *cookie = copy;
        const char *versions = cookie + strlen(cookie) + 1 <= copy + size ? cookie + strlen(cookie) + 1 : "";
        const char *pem = versions[0] && versions + strlen(versions) + 1 <= copy + size ? versions + strlen(versions) + 1 : "";
        (void) plugin_cookie_ok(cookie);
        (void) plugin_versions_offer(versions, PLUGIN_PROTOCOL_VERSION);
        (void) plugin_client_cert_check(pem, strlen(pem));
        char *line = NULL;
        if (plugin_handshake_line("unix", cookie, data, size, &line) == 0)
                free(line);
        free(copy);
        return 0;
}
