/* SPDX-License-Identifier: Apache-2.0 */
/* gRPC C core's plugin registry, cut down to what this provider needs. Linked into the static
 * provider only (CONSTELLATION_STATIC_PROVIDER; provider/CMakeLists.txt).
 *
 * grpc_init() builds its configuration with grpc_core::BuildCoreConfiguration()
 * (src/core/plugin_registry/grpc_plugin_registry.cc in gRPC 1.51), which registers every resolver,
 * load-balancing policy and filter gRPC has. This process serves one client (Terraform) on a unix
 * socket over TLS, and its only client use is a channel to one node (lib/nodeclient: a direct
 * channel over the aTLS relay, or one address), so it defines that function itself with:
 *   - the server side: HTTP/2 server filter, TLS handshaker and server auth filter, deadlines,
 *     message size limits, connection age/idle;
 *   - the client side of a plain channel: client channel, authority filter, pick_first, the
 *     sockaddr (unix:, ipv4:, ipv6:) and DNS (c-ares, native) resolvers, TCP connect, service
 *     config channel arg;
 * and without grpclb, RLS, round robin, ring hash, priority, weighted target, outlier detection,
 * fault injection and HTTP CONNECT proxies. In a static link the archive member that holds gRPC's
 * definition is then never pulled in, and --gc-sections drops what only it referenced: the binary
 * shrinks from 15.1 to 11.3 MB and the idle RSS from 11.1 to 9.5 MB (README, Benchmarks), and code
 * that never runs here is not in the process at all.
 *
 * The functions are gRPC's C++ registration functions, called by their Itanium-mangled names (each
 * takes a CoreConfiguration::Builder* and returns void, so the C calling convention is the same).
 * A gRPC version that renames one fails the link loudly; one that adds a required registration
 * fails test-terraform. Never link this where gRPC is a shared library: the executable's
 * definition would interpose on libgrpc.so's. */

#include <openssl/ssl.h>

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

GRPC_REGISTRATION(build_client_channel, "_ZN9grpc_core31BuildClientChannelConfigurationEPNS_17CoreConfiguration7BuilderE");
GRPC_REGISTRATION(register_client_authority_filter,
                  "_ZN9grpc_core29RegisterClientAuthorityFilterEPNS_17CoreConfiguration7BuilderE");
GRPC_REGISTRATION(register_pick_first, "_ZN9grpc_core25RegisterPickFirstLbPolicyEPNS_17CoreConfiguration7BuilderE");
GRPC_REGISTRATION(register_ares_dns_resolver, "_ZN9grpc_core23RegisterAresDnsResolverEPNS_17CoreConfiguration7BuilderE");
GRPC_REGISTRATION(register_native_dns_resolver,
                  "_ZN9grpc_core25RegisterNativeDnsResolverEPNS_17CoreConfiguration7BuilderE");
GRPC_REGISTRATION(register_sockaddr_resolver, "_ZN9grpc_core24RegisterSockaddrResolverEPNS_17CoreConfiguration7BuilderE");
GRPC_REGISTRATION(register_tcp_connect_handshaker,
                  "_ZN9grpc_core28RegisterTCPConnectHandshakerEPNS_17CoreConfiguration7BuilderE");
GRPC_REGISTRATION(register_service_config_arg_filter,
                  "_ZN9grpc_core37RegisterServiceConfigChannelArgFilterEPNS_17CoreConfiguration7BuilderE");

/* absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle): Debian's abseil is built without
 * NDEBUG, so every absl::Mutex that gRPC core takes while holding another records the lock order
 * in a global graph, with a stack trace (libgcc's unwinder over .eh_frame) for each new edge. That
 * is a debugging aid for abseil's users (a detected cycle aborts the process); here it cost CPU on
 * every call and kept the unwinder, .eh_frame pages and the graph's arena resident. kIgnore (0)
 * turns it off, as in an NDEBUG build of abseil: in a constructor with a priority, which runs
 * before every C++ static initialiser (they have none), so before the first lock. It only stores
 * the mode in an atomic. */
enum absl_on_deadlock_cycle { ABSL_ON_DEADLOCK_CYCLE_IGNORE = 0 };
extern void absl_set_mutex_deadlock_detection_mode(enum absl_on_deadlock_cycle mode) __asm__(
        "_ZN4absl7debian329SetMutexDeadlockDetectionModeENS0_15OnDeadlockCycleE");

void grpc_core_config_no_deadlock_detection(void);
__attribute__((constructor(101))) void grpc_core_config_no_deadlock_detection(void) {
        absl_set_mutex_deadlock_detection_mode(ABSL_ON_DEADLOCK_CYCLE_IGNORE);
}

void grpc_core_build_configuration(struct grpc_core_builder *b) __asm__(
        "_ZN9grpc_core22BuildCoreConfigurationEPNS_17CoreConfiguration7BuilderE");
void grpc_core_build_configuration(struct grpc_core_builder *b) {
        /* gRPC 1.51's own order (objdump of grpc_plugin_registry.cc.o), minus what is listed
         * above: handshakers are prepended, filters keep their registration order. */
        register_event_engine_preconditioning(b);
        register_tcp_connect_handshaker(b);
        register_pick_first(b);               /* the one LB policy: a node has one address */
        build_client_channel(b);              /* client channel, retries, service config parsers */
        register_security_handshakers(b);     /* TLS handshakers */
        register_client_authority_filter(b);  /* :authority on client calls */
        register_channel_idle_filters(b);     /* client idle, server max connection age/idle */
        register_http_filters(b);             /* HTTP/2 client and server filters: the gRPC wire protocol */
        register_deadline_filter(b);          /* deadlines */
        register_message_size_filter(b);      /* max_receive/send_message_length */
        register_service_config_arg_filter(b);
        register_resource_quota(b);           /* memory quota channel arg */
        register_ares_dns_resolver(b);        /* dns: targets (c-ares unless GRPC_DNS_RESOLVER=native) */
        register_native_dns_resolver(b);
        register_sockaddr_resolver(b);        /* unix:, ipv4:, ipv6: targets */
        register_security_filters(b);         /* client and server auth filters: peer certificates */
        register_builtins(b);                 /* connected channel, lame client */
}

/* gRPC's TLS contexts, as Terraform's client meets them. gRPC 1.51 builds every SSL_CTX in
 * populate_ssl_context() (src/core/tsi/ssl_transport_security.cc), whose only say on key exchange is
 * SSL_CTX_set_tmp_ecdh() with a P-256 key: the context accepts P-256 alone. Go's TLS client (go-plugin
 * in Terraform) sends its TLS 1.3 key share for X25519, its first preference, so every handshake with
 * the provider took a HelloRetryRequest: one more round trip, and a P-256 key share for Terraform to
 * make, three times per plan (seen on the wire: the server's first record is a ServerHello with the
 * HelloRetryRequest random, RFC 8446 4.1.3). The context also sent two TLS 1.3 session tickets after
 * every handshake (RFC 8446 4.6.1), each a copy of the session that OpenSSL 3.0 makes by encoding and
 * re-parsing it, client certificate included: about 8 % of the provider's CPU in a plan. Terraform
 * starts a new process for every connection, so nothing ever resumes with a ticket.
 *
 * So the static provider links with --wrap=SSL_CTX_ctrl (provider/CMakeLists.txt) and turns gRPC's
 * set_tmp_ecdh, which nothing else in the binary calls (objdump: populate_ssl_context only), into the
 * groups P-256 and X25519, P-256 first so that a gRPC client context still sends a P-256 key share
 * (OpenSSL 3.0's server takes the first key share the client sent that it accepts: no server
 * preference), and no session tickets. Certificates, their verification and the cipher suites are
 * untouched; X25519 is TLS 1.3's mandatory-to-implement group beside P-256 (RFC 8446 9.1). If setting
 * the groups fails, gRPC's own call runs unchanged. */
long __real_SSL_CTX_ctrl(SSL_CTX *ctx, int cmd, long larg, void *parg);
long __wrap_SSL_CTX_ctrl(SSL_CTX *ctx, int cmd, long larg, void *parg);
long __wrap_SSL_CTX_ctrl(SSL_CTX *ctx, int cmd, long larg, void *parg) {
        if (cmd != SSL_CTRL_SET_TMP_ECDH)
                return __real_SSL_CTX_ctrl(ctx, cmd, larg, parg);
        if (__real_SSL_CTX_ctrl(ctx, SSL_CTRL_SET_GROUPS_LIST, 0, (void *) "P-256:X25519") != 1)
                return __real_SSL_CTX_ctrl(ctx, cmd, larg, parg);
        (void) SSL_CTX_set_num_tickets(ctx, 0);
        return 1;
}
