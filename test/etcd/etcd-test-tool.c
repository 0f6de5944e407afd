/* SPDX-License-Identifier: Apache-2.0 */
/* The etcd side of the Python node tests (test/etcd/etcdtest.py), through lib/etcd:
 *   etcd-test-tool pki DIR NODE IP                  lib/pki: pki_create + pki_etcd_certs
 *   etcd-test-tool put ENDPOINT PKI KEY FILE        etcd_put of FILE's bytes
 *   etcd-test-tool get ENDPOINT PKI KEY             the value on stdout; exit 2 if absent
 *   etcd-test-tool members ENDPOINT PKI             "name peer-url" per member (" learner" after a learner)
 *   etcd-test-tool datakey KEYSERVICE ID            a key service's 32-byte data key ID, hex (test keys only)
 *   etcd-test-tool member-join NAME IP PKI ENV DATA ENDPOINT PEER-PORT MEMBER
 *                                                   the bootstrapper's bootstrapper_etcd_member_join
 *                                                   with --etcd-unit "" (the caller starts etcd from ENV)
 * Exit 0 ok, 1 failure (the ct_error on stderr), 2 absent, 64 usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "basic/fileio.h"
#include "basic/encoding.h"
#include "join.h"
#include "keyservice.pb-c.h"
#include "rpc/rpc.h"
#include "rpc/wipe-alloc.h"
#include "etcd/etcd.h"
#include "pki/pki.h"

static int fail(const ct_error *e) {
        char buf[CT_ERROR_DETAIL_MAX + 64];
        fprintf(stderr, "etcd-test-tool: %s\n", ct_error_format(e, buf, sizeof buf));
        return 1;
}

static int open_client(const char *endpoint, const char *pki, etcd_client **ret, ct_error *err) {
        etcd_client_config c;
        _cleanup_free_ char *storage = NULL;
        if (etcd_client_config_from_pki(endpoint, pki, &c, &storage) < 0)
                return -ENOMEM;
        return etcd_client_new(&c, ret, err);
}

int main(int argc, char **argv) {
        ct_error err = CT_ERROR_INIT;
        if (argc == 5 && strcmp(argv[1], "pki") == 0) {
                const char *ips[] = { argv[4] };
                if (pki_create(argv[2], &err) < 0 || pki_etcd_certs(argv[2], argv[3], ips, 1, &err) < 0)
                        return fail(&err);
                return 0;
        }
        if (argc == 6 && strcmp(argv[1], "put") == 0) {
                _cleanup_free_ uint8_t *data = NULL;
                size_t len = 0;
                if (read_full_file(argv[5], ETCD_MAX_REQUEST / 2, &data, &len) < 0) {
                        fprintf(stderr, "etcd-test-tool: cannot read %s\n", argv[5]);
                        return 1;
                }
                _cleanup_(etcd_client_freep) etcd_client *c = NULL;
                if (open_client(argv[2], argv[3], &c, &err) < 0 || etcd_put(c, argv[4], data, len, NULL, &err) < 0)
                        return fail(&err);
                return 0;
        }
        if (argc == 5 && strcmp(argv[1], "get") == 0) {
                _cleanup_(etcd_client_freep) etcd_client *c = NULL;
                _cleanup_secret_ secret_t *v = NULL;
                int64_t rev = 0;
                if (open_client(argv[2], argv[3], &c, &err) < 0)
                        return fail(&err);
                int r = etcd_get(c, argv[4], ETCD_MAX_RESPONSE, &v, &rev, &err);
                if (r == -ENOENT)
                        return 2;
                if (r < 0)
                        return fail(&err);
                fwrite(v->data, 1, v->len, stdout);
                return 0;
        }
        if (argc == 4 && strcmp(argv[1], "members") == 0) {
                _cleanup_(etcd_client_freep) etcd_client *c = NULL;
                etcd_members m = { 0 };
                if (open_client(argv[2], argv[3], &c, &err) < 0 || etcd_member_list(c, &m, &err) < 0)
                        return fail(&err);
                for (size_t i = 0; i < m.n; i++)
                        printf("%s %s%s\n", m.items[i].name[0] ? m.items[i].name : "-", m.items[i].peer_urls[0],
                               m.items[i].learner ? " learner" : "");
                etcd_members_done(&m);
                return 0;
        }
        if (argc == 4 && strcmp(argv[1], "datakey") == 0) {
                rpc_channel *ch = NULL;
                if (rpc_channel_new(argv[2], NULL, NULL, &ch) < 0)
                        return 1;
                Kms__GetDataKeyRequest req = KMS__GET_DATA_KEY_REQUEST__INIT;
                req.data_key_id = argv[3];
                req.length = 32;
                uint8_t buf[1200];
                if (kms__get_data_key_request__get_packed_size(&req) > sizeof buf) {
                        rpc_channel_free(ch);
                        return 64;
                }
                size_t n = kms__get_data_key_request__pack(&req, buf);
                uint8_t *resp = NULL;
                size_t len = 0;
                rpc_status st = { 0 };
                int r = rpc_unary(ch, "/kms.API/GetDataKey", buf, n, 10000, &resp, &len, &st);
                rpc_channel_free(ch);
                Kms__GetDataKeyResponse *m = r >= 0 && st.code == GRPC_STATUS_OK ?
                        kms__get_data_key_response__unpack(&rpc_wiping_allocator, len, resp) : NULL;
                rpc_status_done(&st);
                erase_and_free_sized(resp, len);
                if (!m || m->data_key.len != 32) {
                        if (m)
                                kms__get_data_key_response__free_unpacked(m, &rpc_wiping_allocator);
                        fprintf(stderr, "etcd-test-tool: no data key from %s\n", argv[2]);
                        return 1;
                }
                _cleanup_free_ char *hex = hex_encode(m->data_key.data, m->data_key.len);
                kms__get_data_key_response__free_unpacked(m, &rpc_wiping_allocator);
                if (!hex)
                        return 1;
                printf("%s\n", hex);
                return 0;
        }
        if (argc == 10 && strcmp(argv[1], "member-join") == 0) {
                bootstrapper_config cfg = { .pki_dir = argv[4], .md = { .name = argv[2], .vpc_ip = argv[3] } };
                bootstrapper_etcd_options o = { .endpoint = argv[7], .unit = "", .env_file = argv[5],
                                                .data_dir = argv[6], .peer_port = atoi(argv[8]), .wait_ms = 60000 };
                if (bootstrapper_etcd_member_join(&cfg, &o, argv[9], &err) < 0)
                        return fail(&err);
                return 0;
        }
        fprintf(stderr, "usage: etcd-test-tool pki DIR NODE IP | put ENDPOINT PKI KEY FILE | get ENDPOINT PKI KEY | "
                        "members ENDPOINT PKI | member-join NAME IP PKI ENV DATA ENDPOINT PEER-PORT MEMBER\n");
        return 64;
}
