/* SPDX-License-Identifier: Apache-2.0 */
/* /init of a throw-away initramfs for guest-net-check.sh: proves the guest side of the network
 * design (docs/qemu-infra.md) inside real VMs started by constellation-qemu. Built statically by
 * the script; prints CT-* lines on /dev/ttyS0 (the node's console.log).
 *   - loads the virtio core, virtio_pci, failover, net_failover, virtio_net, qemu_fw_cfg from /m/NAME.ko
 *   - CT-MD <metadata JSON read from fw_cfg>: name, role and vpc_ip come from it
 *   - eth0 up with vpc_ip/22 (the address slirp's DHCP gives: dhcpstart = vpc_ip)
 *   - cp: serves "hello from <name>" on :30090
 *   - worker: dials 10.42.1.100:30090 (a guestfwd of its slirp, run through the relay to the
 *     control plane's host forward), prints CT-NET-OK <reply> or CT-NET-FAIL <errno text> */
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* "key":"value" of the (compact, lib/qemuinfra-written) metadata document. */
static void field(const char *json, const char *key, char *out, size_t size) {
        char pat[64];
        snprintf(pat, sizeof pat, "\"%s\":\"", key);
        const char *p = strstr(json, pat);
        out[0] = 0;
        if (!p)
                return;
        p += strlen(pat);
        size_t n = strcspn(p, "\"");
        if (n >= size)
                n = size - 1;
        memcpy(out, p, n);
        out[n] = 0;
}

static void load(const char *name, bool report) {
        char path[64];
        snprintf(path, sizeof path, "/m/%s.ko", name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        long r = fd < 0 ? -1 : syscall(SYS_finit_module, fd, "", 0);
        if (r < 0 && errno != EEXIST && report)
                printf("CT-MODULE %s: %s\n", name, strerror(errno));
        if (fd >= 0)
                close(fd);
}

static int ifconfig(const char *ifname, const char *ip, const char *mask) {
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        struct ifreq ifr = { 0 };
        strncpy(ifr.ifr_name, ifname, IFNAMSIZ - 1);
        if (ip) {
                struct sockaddr_in *sa = (struct sockaddr_in *) &ifr.ifr_addr;
                sa->sin_family = AF_INET;
                inet_pton(AF_INET, ip, &sa->sin_addr);
                if (ioctl(s, SIOCSIFADDR, &ifr) < 0)
                        return -errno;
                inet_pton(AF_INET, mask, &sa->sin_addr);
                if (ioctl(s, SIOCSIFNETMASK, &ifr) < 0)
                        return -errno;
        }
        if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
                return -errno;
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
                return -errno;
        close(s);
        return 0;
}

int main(void) {
        mount("proc", "/proc", "proc", 0, NULL);
        mount("sysfs", "/sys", "sysfs", 0, NULL);
        mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
        int con = open("/dev/ttyS0", O_WRONLY | O_NOCTTY);
        if (con >= 0) {
                dup2(con, 1);
                dup2(con, 2);
        }
        setvbuf(stdout, NULL, _IOLBF, 0);
        int fd;
        ssize_t n;
        printf("CT-INIT\n");
        /* No modprobe: a few passes in dependency order; "already loaded" is fine. */
        static const char *const mods[] = { "virtio_ring", "virtio", "virtio_pci_legacy_dev", "virtio_pci_modern_dev",
                                            "virtio_pci", "failover", "net_failover", "virtio_net", "qemu_fw_cfg" };
        for (int pass = 0; pass < 3; pass++)
                for (size_t i = 0; i < sizeof mods / sizeof mods[0]; i++)
                        load(mods[i], pass == 2);
        char md[4096] = "";
        for (int i = 0; i < 50; i++) {
                fd = open("/sys/firmware/qemu_fw_cfg/by_name/opt/constellation/metadata/raw", O_RDONLY);
                if (fd >= 0) {
                        n = read(fd, md, sizeof md - 1);
                        md[n > 0 ? n : 0] = 0;
                        close(fd);
                        break;
                }
                usleep(100000);
        }
        printf("CT-MD %s\n", md);
        char role[32], ip[32], name[64];
        field(md, "role", role, sizeof role);
        field(md, "vpc_ip", ip, sizeof ip);
        field(md, "name", name, sizeof name);
        for (int i = 0; i < 100 && access("/sys/class/net/eth0", F_OK) < 0; i++)
                usleep(100000);
        ifconfig("lo", "127.0.0.1", "255.0.0.0");
        int r = ifconfig("eth0", ip, "255.255.252.0");
        printf("CT-IF eth0 %s/22: %s\n", ip, r < 0 ? strerror(-r) : "up");
        if (strcmp(role, "control-plane") == 0) {
                int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
                setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
                struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(30090) };
                if (bind(s, (struct sockaddr *) &sa, sizeof sa) < 0 || listen(s, 8) < 0)
                        printf("CT-LISTEN-FAIL %s\n", strerror(errno));
                else
                        printf("CT-LISTEN 30090\n");
                for (;;) {
                        struct sockaddr_in peer;
                        socklen_t pl = sizeof peer;
                        int c = accept(s, (struct sockaddr *) &peer, &pl);
                        if (c < 0)
                                continue;
                        char peer_s[32];
                        inet_ntop(AF_INET, &peer.sin_addr, peer_s, sizeof peer_s);
                        printf("CT-ACCEPT from %s\n", peer_s);
                        dprintf(c, "hello from %s\n", name);
                        close(c);
                }
        }
        const char *err = "never tried";
        for (int i = 0; i < 90; i++) {
                int s = socket(AF_INET, SOCK_STREAM, 0);
                struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(30090) };
                inet_pton(AF_INET, "10.42.1.100", &sa.sin_addr);
                if (connect(s, (struct sockaddr *) &sa, sizeof sa) == 0) {
                        char buf[128] = "";
                        ssize_t got = read(s, buf, sizeof buf - 1);
                        close(s);
                        if (got > 0) {
                                buf[strcspn(buf, "\n")] = 0;
                                printf("CT-NET-OK %s\n", buf);
                                err = NULL;
                                break;
                        }
                        err = "connected, empty answer";
                } else {
                        err = strerror(errno);
                        close(s);
                }
                sleep(1);
        }
        if (err)
                printf("CT-NET-FAIL %s\n", err);
        for (;;)
                pause();
}
