/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz-pe: PE/COFF parsing, Authenticode hashing, section access and the whole UKI prediction
 * (which parses the .linux section as a second PE) on arbitrary bytes. */
#include "pcr/pcr.h"
#include "pe/pe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        pe_file *pe = NULL;
        pe_error e;
        if (pe_parse(data, size, &pe, &e) == 0) {
                uint8_t d[32];
                (void) pe_authenticode_digest(pe, EVP_sha256(), d);
                for (size_t i = 0; i < pe->n_sections; i++) {
                        const uint8_t *b;
                        size_t bl;
                        uint8_t *copy = NULL;
                        if (pe_section_bytes(pe, &pe->sections[i], 1 << 24, &b, &bl, &copy) == 0 && bl > 0) {
                                volatile uint8_t x = b[0] ^ b[bl - 1];
                                (void) x;
                        }
                        free(copy);
                }
                pe_free(pe);
        }
        pcr_log *log = NULL;
        pcr_uki_info info = { 0 };
        const char *reason = NULL;
        pcr_uki_options opts = { .pcrphase = "enter-initrd:ready", .loader_cmdline = "x" };
        if (pcr_predict_uki(data, size, &opts, &log, &info, &reason) == 0) {
                json_t *j = pcr_log_to_json(log);
                json_decref(j);
                pcr_uki_info_done(&info);
                pcr_log_free(log);
        }
        return 0;
}
