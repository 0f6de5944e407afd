/* SPDX-License-Identifier: Apache-2.0 */
/* Writes seed inputs for fuzz-provider-request: one realistic request per method, as Terraform
 * would send it, prefixed with the method's index. Usage: fuzz-provider-gen-seeds DIR */
#include <stdio.h>

#include "basic/fileio.h"
#include "fuzz-common.h"
#include "provider.h"

/* name is the method, optionally followed by "-<variant>" naming the seed. */
static int method_index(const char *name) {
        size_t n = strcspn(name, "-");
        for (size_t i = 0; i < ELEMENTSOF(fuzz_methods); i++) {
                const char *m = strrchr(fuzz_methods[i], '/') + 1;
                if (strlen(m) == n && strncmp(m, name, n) == 0)
                        return (int) i;
        }
        abort();
}

static void write_seed(const char *dir, const char *name, const ProtobufCMessage *m) {
        size_t n = protobuf_c_message_get_packed_size(m);
        uint8_t *buf = malloc(n + 1);
        buf[0] = (uint8_t) method_index(name);
        protobuf_c_message_pack(m, buf + 1);
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        if (write_file_atomic(path, buf, n + 1, 0644) < 0)
                fprintf(stderr, "cannot write %s\n", path);
        free(buf);
}

static Tfplugin6__DynamicValue *dv(const cty_value *v, const cty_type *t) {
        Tfplugin6__DynamicValue *d = calloc(1, sizeof(*d));
        tfplugin6__dynamic_value__init(d);
        cty_msgpack_encode(v, t, &d->msgpack.data, &d->msgpack.len);
        return d;
}

int main(int argc, char **argv) {
        if (argc != 2)
                return 2;
        const char *dir = argv[1];
        cty_type *ct = tf_schema_type(tf_resource_cluster.attrs);
        cty_value *cfg = cty_object_new(ct);
        cty_object_set(cfg, "csp", cty_string_new("qemu"));
        cty_object_set(cfg, "name", cty_string_new("seed"));
        cty_object_set(cfg, "master_secret",
                       cty_string_new("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"));
        cty_type *it = tf_schema_type(tf_data_image.attrs);
        cty_value *icfg = cty_object_new(it);
        cty_object_set(icfg, "csp", cty_string_new("qemu"));
        cty_object_set(icfg, "attestation_variant", cty_string_new("qemu-vtpm"));
        cty_object_set(icfg, "version", cty_string_new("v2.25.0"));

        Tfplugin6__GetProviderSchema__Request gps = TFPLUGIN6__GET_PROVIDER_SCHEMA__REQUEST__INIT;
        write_seed(dir, "GetProviderSchema", &gps.base);

        Tfplugin6__ValidateResourceConfig__Request vrc = TFPLUGIN6__VALIDATE_RESOURCE_CONFIG__REQUEST__INIT;
        vrc.type_name = (char *) "constellation_cluster";
        vrc.config = dv(cfg, ct);
        write_seed(dir, "ValidateResourceConfig", &vrc.base);

        Tfplugin6__ValidateDataResourceConfig__Request vdc = TFPLUGIN6__VALIDATE_DATA_RESOURCE_CONFIG__REQUEST__INIT;
        vdc.type_name = (char *) "constellation_image";
        vdc.config = dv(icfg, it);
        write_seed(dir, "ValidateDataResourceConfig", &vdc.base);

        Tfplugin6__ReadDataSource__Request rds = TFPLUGIN6__READ_DATA_SOURCE__REQUEST__INIT;
        rds.type_name = (char *) "constellation_image";
        rds.config = vdc.config;
        write_seed(dir, "ReadDataSource", &rds.base);

        Tfplugin6__PlanResourceChange__Request prc = TFPLUGIN6__PLAN_RESOURCE_CHANGE__REQUEST__INIT;
        prc.type_name = (char *) "constellation_cluster";
        prc.proposed_new_state = vrc.config;
        prc.config = vrc.config;
        write_seed(dir, "PlanResourceChange", &prc.base);

        Tfplugin6__ApplyResourceChange__Request arc = TFPLUGIN6__APPLY_RESOURCE_CHANGE__REQUEST__INIT;
        arc.type_name = (char *) "constellation_cluster";
        arc.prior_state = vrc.config;
        write_seed(dir, "ApplyResourceChange", &arc.base);

        Tfplugin6__ReadResource__Request rr = TFPLUGIN6__READ_RESOURCE__REQUEST__INIT;
        rr.type_name = (char *) "constellation_cluster";
        rr.current_state = vrc.config;
        write_seed(dir, "ReadResource", &rr.base);

        Tfplugin6__ImportResourceState__Request irs = TFPLUGIN6__IMPORT_RESOURCE_STATE__REQUEST__INIT;
        irs.type_name = (char *) "constellation_cluster";
        irs.id = (char *) "constellation-cluster://?kubeConfig=YWJj&clusterEndpoint=h&masterSecret="
                          "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff&masterSecretSalt="
                          "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        write_seed(dir, "ImportResourceState", &irs.base);

        Tfplugin6__UpgradeResourceState__Request urs = TFPLUGIN6__UPGRADE_RESOURCE_STATE__REQUEST__INIT;
        Tfplugin6__RawState raw = TFPLUGIN6__RAW_STATE__INIT;
        const char *json = "{\"name\":\"seed\",\"csp\":\"qemu\",\"kubeconfig\":\"x\"}";
        raw.json.data = (uint8_t *) json;
        raw.json.len = strlen(json);
        urs.type_name = (char *) "constellation_cluster";
        urs.raw_state = &raw;
        write_seed(dir, "UpgradeResourceState", &urs.base);

        cty_type *at = tf_schema_type(tf_data_attestation.attrs);
        cty_value *acfg = cty_object_new(at);
        cty_type *imgt = tf_schema_type(tf_schema_find(tf_data_attestation.attrs, "image")->nested);
        cty_value *img = cty_object_new(imgt);
        cty_object_set(img, "version", cty_string_new("v2.25.0"));
        cty_object_set(img, "reference", cty_string_new("x"));
        cty_object_set(img, "short_path", cty_string_new("v2.25.0"));
        cty_object_set(acfg, "csp", cty_string_new("gcp"));
        cty_object_set(acfg, "attestation_variant", cty_string_new("gcp-sev-snp"));
        cty_object_set(acfg, "image", img);
        Tfplugin6__ValidateDataResourceConfig__Request vda = TFPLUGIN6__VALIDATE_DATA_RESOURCE_CONFIG__REQUEST__INIT;
        vda.type_name = (char *) "constellation_attestation";
        vda.config = dv(acfg, at);
        write_seed(dir, "ValidateDataResourceConfig-attestation", &vda.base);
        Tfplugin6__ReadDataSource__Request rda = TFPLUGIN6__READ_DATA_SOURCE__REQUEST__INIT;
        rda.type_name = (char *) "constellation_attestation";
        rda.config = vda.config;
        write_seed(dir, "ReadDataSource-attestation", &rda.base);

        Tfplugin6__CallFunction__Request cf = TFPLUGIN6__CALL_FUNCTION__REQUEST__INIT;
        cf.name = (char *) "f";
        write_seed(dir, "CallFunction", &cf.base);
        return 0;
}
