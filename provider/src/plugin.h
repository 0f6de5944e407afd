/* SPDX-License-Identifier: Apache-2.0 */
/* The go-plugin side of a Terraform provider: magic cookie, protocol negotiation, AutoMTLS,
 * the handshake line, and go-plugin's own services (terraform-plugin-protocol.md §1–§3). */
#pragma once

#include "basic/macro.h"

#define PLUGIN_MAGIC_COOKIE_KEY "TF_PLUGIN_MAGIC_COOKIE"
#define PLUGIN_MAGIC_COOKIE_VALUE "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2"
#define PLUGIN_PROTOCOL_VERSION 6

/* True if the environment carries go-plugin's magic cookie. */
bool plugin_cookie_ok(const char *value);
/* True if the comma-separated PLUGIN_PROTOCOL_VERSIONS list offers `version`. NULL or empty: the
 * client did not say, assume it speaks it. */
bool plugin_versions_offer(const char *list, int version);
/* Formats the handshake line "1|6|unix|/path|grpc|<raw base64 DER>\n"; cert_der may be NULL
 * (TF_DISABLE_PLUGIN_TLS). */
int plugin_handshake_line(const char *network, const char *address, const uint8_t *cert_der, size_t cert_der_len,
                          char **ret);
/* Validates the PEM in PLUGIN_CLIENT_CERT: one certificate that parses. */
int plugin_client_cert_check(const char *pem, size_t len);

/* The number of tfplugin6 calls whose handler is running (tfplugin.c): go-plugin's Shutdown
 * exits at once when it is 0. */
unsigned tfplugin_calls_in_flight(void);

/* Runs the provider: handshake on stdout, serve until Terraform calls Shutdown. Returns the
 * process exit code. */
int plugin_serve(void);
