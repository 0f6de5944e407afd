/* SPDX-License-Identifier: Apache-2.0 */
/* The Constellation provider: its resources and data sources, and the tfplugin6 service that
 * serves them. */
#pragma once

#include <grpc/status.h>

#include "rpc/rpc.h"
#include "schema.h"

extern const tf_attr tf_provider_attrs[];
extern const tf_resource_ops tf_resource_cluster;
extern const tf_resource_ops tf_resource_qemu_infrastructure;
extern const tf_resource_ops tf_data_image;
extern const tf_resource_ops tf_data_attestation;

/* The default CDN (Constellation's), used when cdn_url is not set. */
#define TF_DEFAULT_CDN_URL "https://cdn.confidential.cloud"
#define TF_DEFAULT_REKOR_URL "https://rekor.sigstore.dev"

/* Largest tfplugin6 request accepted. It is the transport's limit (gRPC's
 * max_receive_message_length on the plugin server: an oversize message is refused with
 * RESOURCE_EXHAUSTED by gRPC and never reaches a handler or our memory) and tfplugin_handle's. */
#define TF_MAX_REQUEST (64u * 1024 * 1024)

void tf_provider_configure(tf_provider_state *p, const cty_value *config, tf_diags *diags);
void tf_provider_state_done(tf_provider_state *p);

/* All resource and data source types, NULL-terminated. */
extern const tf_resource_ops *const tf_resources[];
extern const tf_resource_ops *const tf_data_sources[];

/* Handles one tfplugin6 call: method is the full gRPC method name, request the serialized
 * request. Returns GRPC_STATUS_OK with a serialized response in *ret, or another status with a
 * message in *ret_message. No network: this is also what the fuzz target drives. */
grpc_status_code tfplugin_handle(tf_provider_state *p, const char *method, const uint8_t *request, size_t len,
                                 uint8_t **ret, size_t *ret_len, char **ret_message);

/* Registers every /tfplugin6.Provider/ method on an rpc server. */
int tfplugin_register(rpc_server *server, tf_provider_state *p);
