/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

#include "atls/atls.h"

/* Handshake that also gives up when stop_fd (an eventfd, -1: none) becomes readable. For the
 * client, `confirm` waits after the handshake until the server sent data or closed, so that a
 * server refusing our certificate after a TLS 1.3 handshake (RFC 8446 §4.4.2.4: the client's
 * Finished precedes the server's check) is reported here rather than on the first call. */
int atls_handshake(int fd, bool is_server, const atls_config *config, int stop_fd, bool confirm, SSL **ret,
                   atls_error *err);
