/* SPDX-License-Identifier: Apache-2.0 */
/* Test helper for the script tests and the benchmark: drives lib/tpm's ESYS side against a TPM.
 *   tpm-tool quote TCTI NONCE_HEX OUTDIR [BANK]   AK (ak.tpmt, ak.pem), quote.msg (TPMS_ATTEST),
 *                                                 quote.sig (TPMT_SIGNATURE), pcrs.bin (values
 *                                                 concatenated, as tpm2_pcrread -o), pcrs.json
 *   tpm-tool issue-doc TCTI USERDATA_HEX NONCE_HEX  prints a qemu-vtpm attestation document */
#include <stdio.h>

#include <jansson.h>
#include <openssl/pem.h>
#include <tss2/tss2_tpm2_types.h>

#include "attestation/issue.h"
#include "basic/cleanup-openssl.h"
#include "basic/encoding.h"
#include "basic/fileio.h"
#include "tpm/tpm.h"

static int write_in(const char *dir, const char *name, const void *data, size_t len) {
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, name);
        int r = write_file_atomic(p, data, len, 0644);
        if (r < 0)
                fprintf(stderr, "%s: %s\n", p, strerror(-r));
        return r;
}

static int cmd_quote(const char *tcti, const char *nonce_hex, const char *dir, const char *bank_name) {
        _cleanup_free_ uint8_t *nonce = NULL, *pub = NULL;
        size_t nonce_len, pub_len;
        uint16_t bank = bank_name ? tpmq_alg_from_name(bank_name) : TPM_ALG_SHA256;
        if (hex_decode(nonce_hex, strlen(nonce_hex), &nonce, &nonce_len) < 0 || !bank) {
                fprintf(stderr, "bad nonce or bank\n");
                return 2;
        }
        _cleanup_(tpm_closep) tpm_ctx *t = NULL;
        _cleanup_free_ char *err = NULL;
        if (tpm_open(tcti, &t, &err) < 0) {
                fprintf(stderr, "%s\n", err);
                return 1;
        }
        tpm_quote_result q = { 0 };
        if (tpm_ak_public(t, &pub, &pub_len) < 0 || tpm_quote(t, bank, 0xffffff, nonce, nonce_len, &q) < 0) {
                fprintf(stderr, "%s\n", tpm_last_error(t));
                return 1;
        }
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = NULL;
        if (tpmq_public_parse(pub, pub_len, &k) < 0)
                return 1;
        _cleanup_(BIO_freep) BIO *bio = BIO_new(BIO_s_mem());
        char *pem;
        if (!bio || PEM_write_bio_PUBKEY(bio, k) != 1)
                return 1;
        long pem_len = BIO_get_mem_data(bio, &pem);
        size_t dlen = tpmq_digest_size(bank);
        uint8_t raw[TPMQ_NUM_PCRS * TPMQ_MAX_DIGEST];
        _cleanup_(json_decrefp) json_t *pj = json_object();
        for (unsigned i = 0; i < TPMQ_NUM_PCRS; i++) {
                memcpy(raw + i * dlen, q.pcrs.value[i], dlen);
                _cleanup_free_ char *h = hex_encode(q.pcrs.value[i], dlen);
                char key[4];
                snprintf(key, sizeof key, "%u", i);
                json_object_set_new(pj, key, json_string(h));
        }
        _cleanup_free_ char *pjs = json_dumps(pj, JSON_COMPACT);
        /* tpm2-tools' "serialized" PCR file (tpm2_quote -o, tpm2_checkquote -f): the host-order
         * TPML_PCR_SELECTION struct, a UINT32 count, then that many TPML_DIGEST structs of <= 8. */
        TPML_PCR_SELECTION sel = { .count = 1 };
        sel.pcrSelections[0].hash = bank;
        sel.pcrSelections[0].sizeofSelect = 3;
        memset(sel.pcrSelections[0].pcrSelect, 0xff, 3);
        UINT32 count = 3;
        TPML_DIGEST d[3];
        memset(d, 0, sizeof d);
        for (unsigned i = 0; i < TPMQ_NUM_PCRS; i++) {
                d[i / 8].count = 8;
                d[i / 8].digests[i % 8].size = (UINT16) dlen;
                memcpy(d[i / 8].digests[i % 8].buffer, q.pcrs.value[i], dlen);
        }
        uint8_t ser[sizeof sel + sizeof count + sizeof d];
        memcpy(ser, &sel, sizeof sel);
        memcpy(ser + sizeof sel, &count, sizeof count);
        memcpy(ser + sizeof sel + sizeof count, d, sizeof d);
        int r = 0;
        if (write_in(dir, "ak.tpmt", pub, pub_len) < 0 || write_in(dir, "ak.pem", pem, (size_t) pem_len) < 0 ||
            write_in(dir, "quote.msg", q.attest, q.attest_len) < 0 || write_in(dir, "quote.sig", q.sig, q.sig_len) < 0 ||
            write_in(dir, "pcrs.bin", raw, TPMQ_NUM_PCRS * dlen) < 0 || write_in(dir, "pcrs.json", pjs, strlen(pjs)) < 0 || write_in(dir, "pcrs.tpm2", ser, sizeof ser) < 0)
                r = 1;
        tpm_quote_result_done(&q);
        return r;
}

static int cmd_issue(const char *tcti, const char *ud_hex, const char *nonce_hex) {
        _cleanup_free_ uint8_t *ud = NULL, *nonce = NULL;
        size_t ud_len, nonce_len;
        if (hex_decode(ud_hex, strlen(ud_hex), &ud, &ud_len) < 0 ||
            hex_decode(nonce_hex, strlen(nonce_hex), &nonce, &nonce_len) < 0)
                return 2;
        _cleanup_free_ char *json = NULL, *err = NULL;
        if (attdoc_issue_qemu_vtpm(tcti, ud, ud_len, nonce, nonce_len, &json, NULL, &err) < 0) {
                fprintf(stderr, "%s\n", err ?: "issue failed");
                return 1;
        }
        puts(json);
        return 0;
}

int main(int argc, char **argv) {
        if (argc >= 5 && streq(argv[1], "quote"))
                return cmd_quote(argv[2], argv[3], argv[4], argc > 5 ? argv[5] : NULL);
        if (argc == 5 && streq(argv[1], "issue-doc"))
                return cmd_issue(argv[2], argv[3], argv[4]);
        fprintf(stderr, "usage: tpm-tool quote TCTI NONCE_HEX OUTDIR [BANK] | issue-doc TCTI USERDATA_HEX NONCE_HEX\n");
        return 2;
}
