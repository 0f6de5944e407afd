/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* Methods the request fuzzer drives; the first input byte picks one. ConfigureProvider is left out
 * on purpose: it could point cdn_url at a network address, and fuzzing must stay off the network. */
static const char *const fuzz_methods[] = {
        "/tfplugin6.Provider/GetProviderSchema",     "/tfplugin6.Provider/ValidateProviderConfig",
        "/tfplugin6.Provider/ValidateResourceConfig", "/tfplugin6.Provider/ValidateDataResourceConfig",
        "/tfplugin6.Provider/UpgradeResourceState",  "/tfplugin6.Provider/ReadResource",
        "/tfplugin6.Provider/PlanResourceChange",    "/tfplugin6.Provider/ApplyResourceChange",
        "/tfplugin6.Provider/ImportResourceState",   "/tfplugin6.Provider/ReadDataSource",
        "/tfplugin6.Provider/MoveResourceState",     "/tfplugin6.Provider/CallFunction",
        "/tfplugin6.Provider/GetMetadata",           "/tfplugin6.Provider/StopProvider",
};
#define FUZZ_CDN "file:///nonexistent-ct-fuzz-cdn"
