/* SPDX-License-Identifier: Apache-2.0 */
/* A protobuf-c allocator that wipes every block it frees (STYLE.md "Secrets"): for unpacking
 * messages that carry keys, kubeconfigs or master secrets (Init and join responses, key service
 * replies, etcd values). Each block starts with its size, so free() knows how much to wipe. */
#pragma once

#include <protobuf-c/protobuf-c.h>

extern ProtobufCAllocator rpc_wiping_allocator;
