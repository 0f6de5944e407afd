/* SPDX-License-Identifier: Apache-2.0 */
/* Local QEMU infrastructure: N control-plane and M worker VMs from the node image, each with OVMF
 * (Secure Boot when the image's UKI is signed), its own swtpm vTPM and state disk, on QEMU user
 * networking bound to loopback only. The engine behind `constellation-qemu` and the provider's
 * QEMU infrastructure resource; it mirrors the outputs of Constellation's
 * terraform/infrastructure/qemu module (reference constellation.md §4.5).
 *
 * Processes outlive the caller: swtpm and QEMU are started through a double fork into their own
 * session (re-parented to init or the nearest subreaper) and are found again from the state
 * document only: pid + start time (/proc/<pid>/stat field 22) + /proc/<pid>/exe. A process is
 * signalled only while that identity holds, so a recycled pid is never killed; nothing is ever
 * looked up or killed by name.
 *
 * Network (docs/qemu-infra.md): every VM has its own slirp stack with the same virtual node
 * network 10.42.0.0/22 (Constellation's ip_cidr_node) and its own DHCP address in it
 * (control-plane-i 10.42.1.(100+i), worker-i 10.42.2.(100+i)). Host side, node k's ports
 * QEMUINFRA_PORTS are forwarded from its own loopback address 127.A.B.h (A.B derived from the
 * cluster uid; h = 1+i for control planes, 100+i for workers) to the same guest ports. Guest side,
 * every other control plane's vpc_ip:port is a slirp guestfwd whose command is the relay
 * (`<relay command> 127.A.B.h PORT`, stdin/stdout = the guest connection), so a worker dials
 * 10.42.1.100:30090 and reaches control-plane-0's join service through the host's loopback. A
 * control plane's vpc_ip is thus one address that reaches it from every node (itself: its own
 * interface): its etcd peer URL https://<vpc_ip>:2380; QEMUINFRA_CP_PORTS go between control planes
 * only (and from the host).
 *
 * Errors: negative errno + ct_error, layer "qemuinfra"; reasons: "spec-invalid", "tool-missing",
 * "address-in-use", "io", "spawn", "start-failed", "state-invalid", "state-mismatch",
 * "stop-failed", "leftover", "image". Nothing is logged (library). No secret is ever stored: the
 * state holds the init secret's bcrypt hash only. */
#pragma once

#include <stdint.h>
#include <sys/types.h>

#include "basic/error.h"
#include "basic/macro.h"

#define QEMUINFRA_STATE_VERSION 1
#define QEMUINFRA_MAX_CONTROL_PLANES 99u /* 127.A.B.1 .. .99 */
#define QEMUINFRA_MAX_WORKERS 155u       /* 127.A.B.100 .. .254 */
#define QEMUINFRA_NODE_CIDR "10.42.0.0/22"
#define QEMUINFRA_STATE_MAX_SIZE (1024u * 1024)

/* Ports forwarded host 127.A.B.h:P -> guest :P, and reachable on every control plane's vpc_ip
 * from every other node: bootstrapper/init, recovery, join, verification HTTP and gRPC, kube API. */
extern const uint16_t QEMUINFRA_PORTS[6];
#define QEMUINFRA_N_PORTS 6u
/* Control planes only, forwarded the same way and offered to the other control planes: etcd's peer
 * port (the shared store; docs/qemu-infra.md "Several control planes") and the join service's
 * attestation-config update port (signed updates: constellation_cluster pushes the measurements to
 * it from the host after Init and at every Update). */
extern const uint16_t QEMUINFRA_CP_PORTS[2];
#define QEMUINFRA_N_CP_PORTS 2u

typedef enum qemuinfra_accel {
        QEMUINFRA_ACCEL_AUTO = 0, /* KVM only if the probe boots OVMF under it, else TCG */
        QEMUINFRA_ACCEL_TCG,
        QEMUINFRA_ACCEL_KVM,
} qemuinfra_accel;

typedef enum qemuinfra_tristate {
        QEMUINFRA_AUTO = 0,
        QEMUINFRA_ON,
        QEMUINFRA_OFF,
} qemuinfra_tristate;

/* What the caller asks for. Strings are borrowed. */
struct qemuinfra_cluster;

typedef struct qemuinfra_spec {
        const char *name;  /* cluster name: [a-z0-9-], 1..32, starts with a letter */
        const char *uid;   /* NULL: 8 random hex digits (new cluster only) */
        const char *image; /* raw node image (GPT disk) */
        const char *dir;   /* working directory (disks, sockets, logs); created 0700 */
        unsigned control_planes, workers;
        uint64_t state_disk_bytes; /* sparse raw state disk per node */
        unsigned mem_mib, vcpus;   /* 0: 2048 MiB, 2 */
        const char *init_secret_hash; /* bcrypt ($2a$/$2b$/$2y$) */
        qemuinfra_accel accel;
        qemuinfra_tristate secure_boot; /* AUTO: on iff the image's EFI/BOOT/BOOTX64.EFI is signed */
        const char *ovmf_code, *ovmf_vars; /* NULL: Debian's OVMF_CODE_4M[.secboot].fd / OVMF_VARS_4M[.snakeoil].fd */
        const char *qemu_binary, *swtpm_binary; /* NULL: qemu-system-x86_64 / swtpm from PATH */
        const char *relay_command; /* guestfwd command prefix (absolute program [+ args]); required */
        bool outbound; /* false (default): slirp restrict=on, the guest reaches only the forwards */
        /* Constellation's "direct-linux-boot" mode: OVMF starts this kernel (fw_cfg) instead of
         * the disk's boot loader; the boot disk is still attached. All NULL: boot the disk. */
        const char *kernel, *initrd, *cmdline;
        /* Optional: called by qemuinfra_up right after each swtpm or QEMU pid was recorded in the
         * cluster (before waiting for it to come up), so that a caller killed in the middle of up
         * still has a record of every process it started (the provider saves the state document
         * beside the working directory). A negative errno aborts up ("io"). */
        int (*on_started)(const struct qemuinfra_cluster *c, void *userdata);
        void *userdata;
} qemuinfra_spec;

typedef struct qemuinfra_proc {
        pid_t pid;           /* 0: never started */
        uint64_t start_time; /* /proc/<pid>/stat field 22, clock ticks after boot */
        char *exe;           /* absolute path of the binary started */
} qemuinfra_proc;

typedef struct qemuinfra_node {
        char *name; /* control-plane-<i> | worker-<i> */
        bool control_plane;
        unsigned index;
        char *host_address; /* 127.A.B.h */
        char *vpc_ip;       /* 10.42.1.(100+i) | 10.42.2.(100+i) */
        char *dir;          /* <cluster dir>/<name>: boot.raw state.raw vars.fd tpm/ metadata.json *.sock *.log */
        qemuinfra_proc qemu, swtpm;
} qemuinfra_node;

/* The state document's content (qemuinfra_state_to_json / _from_json). */
typedef struct qemuinfra_cluster {
        char *uid, *name, *dir, *image;
        uint64_t state_disk_bytes;
        unsigned mem_mib, vcpus;
        char *accel; /* "tcg" | "kvm": decided once, at creation */
        char *accel_reason;
        bool secure_boot;
        char *ovmf_code, *ovmf_vars_template;
        char *qemu_binary, *swtpm_binary, *relay_command;
        bool outbound;
        char *kernel, *initrd, *cmdline; /* NULL: boot the disk */
        char *init_secret_hash;
        uint8_t addr_a, addr_b; /* 127.A.B.h */
        qemuinfra_node *nodes;
        size_t n_nodes;
} qemuinfra_cluster;

void qemuinfra_cluster_free(qemuinfra_cluster *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(qemuinfra_cluster *, qemuinfra_cluster_free);

/* Brings the cluster to the spec. *cluster NULL: a new cluster (uid, addresses, accelerator and
 * Secure Boot decided now; the addresses' ports must be free). Otherwise the recorded cluster is
 * converged: name, uid, image and dir must match the spec (else "state-mismatch"); nodes beyond
 * the counts are stopped and removed, missing ones created, and every node that is not alive
 * (qemuinfra_node_inspect) is stopped (identity-checked) and started again with its existing
 * state disk, TPM state and firmware variables. *cluster is updated in place even on failure, so
 * the caller must save it in every case (it records every process started). */
int qemuinfra_up(const qemuinfra_spec *spec, qemuinfra_cluster **cluster, ct_error *err);

typedef enum qemuinfra_proc_status {
        QEMUINFRA_PROC_ALIVE = 0,
        QEMUINFRA_PROC_NOT_STARTED, /* pid 0 */
        QEMUINFRA_PROC_GONE,        /* no such process (or a zombie) */
        QEMUINFRA_PROC_RECYCLED,    /* the pid belongs to another process (start time or exe differ) */
} qemuinfra_proc_status;

const char *qemuinfra_proc_status_to_string(qemuinfra_proc_status s);
/* Checks a recorded process; detail (may be NULL) gets a sentence saying why it is not alive. */
qemuinfra_proc_status qemuinfra_proc_inspect(const qemuinfra_proc *p, char *detail, size_t size);
/* A node is alive iff its QEMU and its swtpm both are. */
bool qemuinfra_node_alive(const qemuinfra_node *n, char *reason, size_t size);

/* Stops every recorded process (QMP quit, SIGTERM, then SIGKILL after bounded waits; only while
 * the identity holds) and removes the files this engine created, then the directories. A second
 * call succeeds. A directory holding files the engine did not create is left ("leftover"). */
int qemuinfra_down(qemuinfra_cluster *c, ct_error *err);

/* State document (JSON object; no secret in it). */
int qemuinfra_state_to_json(const qemuinfra_cluster *c, char **ret, ct_error *err);
int qemuinfra_state_from_json(const char *json, size_t len, qemuinfra_cluster **ret, ct_error *err);

/* The node's lib/metadata document as written to <node dir>/metadata.json (fw_cfg). */
int qemuinfra_node_metadata(const qemuinfra_cluster *c, const qemuinfra_node *n, char **ret, ct_error *err);

/* The node's QEMU -netdev argument (malloc'd; NULL: out of memory): slirp with its DHCP address,
 * its host forwards and the guestfwd relays to the other control planes. */
char *qemuinfra_node_netdev(const qemuinfra_cluster *c, const qemuinfra_node *n);

/* Outputs of Constellation's qemu module, derived from the cluster. */
const char *qemuinfra_out_of_cluster_endpoint(const qemuinfra_cluster *c); /* control-plane-0's loopback address */
const char *qemuinfra_in_cluster_endpoint(const qemuinfra_cluster *c);     /* control-plane-0's vpc_ip */

/* bcrypt ($2b$, cost 10 as Go's bcrypt.DefaultCost) of an init secret (no NUL bytes). */
int qemuinfra_hash_init_secret(const void *secret, size_t len, char **ret_hash, ct_error *err);

/* The guestfwd relay: connects to addr:port (addr must be in 127.0.0.0/8) and copies in_fd -> the
 * connection and the connection -> out_fd until both directions end. Never writes to stderr
 * (slirp gives the command the guest connection on fds 0, 1 and 2). */
int qemuinfra_relay(int in_fd, int out_fd, const char *addr, uint16_t port);
