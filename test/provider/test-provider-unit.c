/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the provider's protocol layer without Terraform: handshake helpers, and the
 * tfplugin6 handlers driven through tfplugin_handle() with real protobuf messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "plugin.h"
#include "provider.h"

static void test_cookie_and_versions(void **state) {
        assert_true(plugin_cookie_ok(PLUGIN_MAGIC_COOKIE_VALUE));
        assert_false(plugin_cookie_ok(NULL));
        assert_false(plugin_cookie_ok("d602bf8f"));
        assert_true(plugin_versions_offer("5,6", 6));
        assert_true(plugin_versions_offer("6,5", 6));
        assert_true(plugin_versions_offer(NULL, 6));
        assert_false(plugin_versions_offer("5", 6));
        assert_false(plugin_versions_offer("56,7", 6));
        assert_false(plugin_versions_offer("x6", 6));
}

static void test_handshake_line(void **state) {
        /* Five bytes encode to 7 base64 characters plus one '=' in padded form: must be unpadded. */
        const uint8_t der[] = { 1, 2, 3, 4, 5 };
        _cleanup_free_ char *line = NULL;
        assert_int_equal(plugin_handshake_line("unix", "/tmp/x.sock", der, sizeof(der), &line), 0);
        assert_string_equal(line, "1|6|unix|/tmp/x.sock|grpc|AQIDBAU\n");
        _cleanup_free_ char *plain = NULL;
        assert_int_equal(plugin_handshake_line("unix", "/tmp/x.sock", NULL, 0, &plain), 0);
        assert_string_equal(plain, "1|6|unix|/tmp/x.sock|grpc|\n");
        assert_int_equal(plugin_client_cert_check("not a pem", 9), -EBADMSG);
}

static void test_schema_rpc(void **state) {
        tf_provider_state p = { 0 };
        Tfplugin6__GetProviderSchema__Request req = TFPLUGIN6__GET_PROVIDER_SCHEMA__REQUEST__INIT;
        uint8_t buf[16];
        size_t n = protobuf_c_message_pack(&req.base, buf);
        _cleanup_free_ uint8_t *resp = NULL;
        _cleanup_free_ char *msg = NULL;
        size_t len;
        assert_int_equal(tfplugin_handle(&p, "/tfplugin6.Provider/GetProviderSchema", buf, n, &resp, &len, &msg),
                         GRPC_STATUS_OK);
        Tfplugin6__GetProviderSchema__Response *r = (void *) protobuf_c_message_unpack(
                &tfplugin6__get_provider_schema__response__descriptor, NULL, len, resp);
        assert_non_null(r);
        assert_non_null(r->provider);
        assert_non_null(r->provider->block);
        assert_int_equal(r->n_resource_schemas, 2);
        assert_string_equal(r->resource_schemas[0]->key, "constellation_cluster");
        bool saw_secret = false;
        Tfplugin6__Schema__Block *b = r->resource_schemas[0]->value->block;
        for (size_t i = 0; i < b->n_attributes; i++)
                if (streq(b->attributes[i]->name, "master_secret")) {
                        saw_secret = true;
                        assert_true(b->attributes[i]->sensitive);
                        assert_true(b->attributes[i]->write_only);
                        /* optional: kmip (hold your own key) replaces it; validation wants exactly one */
                        assert_true(b->attributes[i]->optional);
                }
        assert_true(saw_secret);
        /* constellation_qemu_infrastructure: its init secret is write-only too. */
        assert_string_equal(r->resource_schemas[1]->key, "constellation_qemu_infrastructure");
        saw_secret = false;
        b = r->resource_schemas[1]->value->block;
        for (size_t i = 0; i < b->n_attributes; i++)
                if (streq(b->attributes[i]->name, "init_secret")) {
                        saw_secret = true;
                        assert_true(b->attributes[i]->sensitive);
                        assert_true(b->attributes[i]->write_only);
                }
        assert_true(saw_secret);
        protobuf_c_message_free_unpacked(&r->base, NULL);

        /* A malformed request is INVALID_ARGUMENT, an unknown method UNIMPLEMENTED. */
        _cleanup_free_ char *m2 = NULL, *m3 = NULL;
        uint8_t *none = NULL;
        const uint8_t garbage[] = { 0x0a, 0xff, 0xff };
        assert_int_equal(tfplugin_handle(&p, "/tfplugin6.Provider/ReadResource", garbage, sizeof(garbage), &none, &len,
                                         &m2),
                         GRPC_STATUS_INVALID_ARGUMENT);
        assert_int_equal(tfplugin_handle(&p, "/tfplugin6.Provider/Nope", buf, n, &none, &len, &m3),
                         GRPC_STATUS_UNIMPLEMENTED);
}

static void test_validate_hex_secret(void **state) {
        /* ValidateResourceConfig with a 63-character master secret: diagnostic at master_secret. */
        tf_provider_state p = { 0 };
        _cleanup_(cty_type_unrefp) cty_type *t = tf_schema_type(tf_resource_cluster.attrs);
        _cleanup_(cty_value_freep) cty_value *cfg = cty_object_new(t);
        char secret[64];
        memset(secret, 'a', 63);
        secret[63] = 0;
        assert_int_equal(cty_object_set(cfg, "master_secret", cty_string_new(secret)), 0);
        /* its salt too: either alone is its own error (exactly one of master_secret+salt and kmip) */
        char salt[65];
        memset(salt, 'b', 64);
        salt[64] = 0;
        assert_int_equal(cty_object_set(cfg, "master_secret_salt", cty_string_new(salt)), 0);
        assert_int_equal(cty_object_set(cfg, "csp", cty_string_new("qemu")), 0);
        Tfplugin6__DynamicValue dv = TFPLUGIN6__DYNAMIC_VALUE__INIT;
        assert_int_equal(cty_msgpack_encode(cfg, t, &dv.msgpack.data, &dv.msgpack.len), 0);
        Tfplugin6__ValidateResourceConfig__Request req = TFPLUGIN6__VALIDATE_RESOURCE_CONFIG__REQUEST__INIT;
        req.type_name = (char *) "constellation_cluster";
        req.config = &dv;
        size_t n = protobuf_c_message_get_packed_size(&req.base);
        _cleanup_free_ uint8_t *buf = malloc(n);
        protobuf_c_message_pack(&req.base, buf);
        free(dv.msgpack.data);
        _cleanup_free_ uint8_t *resp = NULL;
        _cleanup_free_ char *msg = NULL;
        size_t len;
        assert_int_equal(tfplugin_handle(&p, "/tfplugin6.Provider/ValidateResourceConfig", buf, n, &resp, &len, &msg),
                         GRPC_STATUS_OK);
        Tfplugin6__ValidateResourceConfig__Response *r = (void *) protobuf_c_message_unpack(
                &tfplugin6__validate_resource_config__response__descriptor, NULL, len, resp);
        assert_non_null(r);
        assert_int_equal(r->n_diagnostics, 1);
        assert_int_equal(r->diagnostics[0]->severity, TFPLUGIN6__DIAGNOSTIC__SEVERITY__ERROR);
        assert_non_null(r->diagnostics[0]->attribute);
        assert_string_equal(r->diagnostics[0]->attribute->steps[0]->attribute_name, "master_secret");
        assert_non_null(strstr(r->diagnostics[0]->detail, "got 63 characters"));
        assert_null(strstr(r->diagnostics[0]->detail, secret));
        protobuf_c_message_free_unpacked(&r->base, NULL);
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_cookie_and_versions),
                cmocka_unit_test(test_handshake_line),
                cmocka_unit_test(test_schema_rpc),
                cmocka_unit_test(test_validate_hex_secret),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
