/* SPDX-License-Identifier: Apache-2.0 */
/* gRPC C core's plugin registry, cut down to what a go-plugin server needs. Linked into the static
 * provider only (CONSTELLATION_STATIC_PROVIDER; provider/CMakeLists.txt).
 *
 * grpc_init() builds its configuration with grpc_core::BuildCoreConfiguration()
 * (src/core/plugin_registry/grpc_plugin_registry.cc in gRPC 1.51), which registers every resolver,
 * load-balancing policy and client filter gRPC has: grpclb, RLS, ring hash, priority, weighted
 * target, outlier detection, round robin, fault injection, c-ares and native DNS, HTTP CONNECT
 * proxies. This process only serves one client on a unix socket over TLS, so it defines that
 * function itself with the server's part. In a static link the archive member that holds gRPC's
 * definition is then never pulled in, and --gc-sections drops what only it referenced: the
 * binary shrinks from 15.1 to 10.6 MB and its peak RSS by about 2 MB (README, Benchmarks), and
 * code that never runs here is not in the process at all.
 *
 * The functions are gRPC's C++ registration functions, called by their Itanium-mangled names (each
 * takes a CoreConfiguration::Builder* and returns void, so the C calling convention is the same).
 * A gRPC version that renames one fails the link loudly; one that adds a required registration
 * fails test-terraform. Never link this where gRPC is a shared library: the executable's
 * definition would interpose on libgrpc.so's. */

struct grpc_core_builder;

#define GRPC_REGISTRATION(fn, mangled) extern void fn(struct grpc_core_builder *b) __asm__(mangled)
GRPC_REGISTRATION(register_event_engine_preconditioning,
                  "_ZN17grpc_event_engine12experimental44RegisterEventEngineChannelArgPreconditioningEPN9grpc_"
                  "core17CoreConfiguration7BuilderE");
GRPC_REGISTRATION(register_builtins, "_ZN9grpc_core16RegisterBuiltinsEPNS_17CoreConfiguration7BuilderE");
GRPC_REGISTRATION(register_resource_quota, "_ZN9grpc_core21RegisterResourceQuotaEPNS_17CoreConfiguration7BuilderE");
GRPC_REGISTRATION(register_message_size_filter,
                  "_ZN9grpc_core25RegisterMessageSizeFilterEPNS_17CoreConfiguration7BuilderE");
GRPC_REGISTRATION(register_deadline_filter, "_ZN9grpc_core22RegisterDeadlineFilterEPNS_17CoreConfiguration7BuilderE");
GRPC_REGISTRATION(register_http_filters, "_ZN9grpc_core19RegisterHttpFiltersEPNS_17CoreConfiguration7BuilderE");
GRPC_REGISTRATION(register_channel_idle_filters,
                  "_ZN9grpc_core26RegisterChannelIdleFiltersEPNS_17CoreConfiguration7BuilderE");
GRPC_REGISTRATION(register_security_filters,
                  "_ZN9grpc_core23RegisterSecurityFiltersEPNS_17CoreConfiguration7BuilderE");
GRPC_REGISTRATION(register_security_handshakers,
                  "_ZN9grpc_core35SecurityRegisterHandshakerFactoriesEPNS_17CoreConfiguration7BuilderE");

void grpc_core_build_configuration(struct grpc_core_builder *b) __asm__(
        "_ZN9grpc_core22BuildCoreConfigurationEPNS_17CoreConfiguration7BuilderE");
void grpc_core_build_configuration(struct grpc_core_builder *b) {
        /* In the order of gRPC's own BuildCoreConfiguration, server-side entries only. */
        register_event_engine_preconditioning(b);
        register_builtins(b);          /* connected channel, lame client */
        register_resource_quota(b);    /* memory quota channel arg */
        register_message_size_filter(b); /* max_receive/send_message_length */
        register_deadline_filter(b);   /* server-side deadlines */
        register_http_filters(b);      /* HTTP/2 server filter: the gRPC wire protocol */
        register_channel_idle_filters(b); /* max connection age/idle (server side) */
        register_security_filters(b);  /* server auth filter: the peer's verified certificate */
        register_security_handshakers(b); /* the TLS server handshaker */
}
