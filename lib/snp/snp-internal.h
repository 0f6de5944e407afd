/* SPDX-License-Identifier: Apache-2.0 */
/* Internal helpers shared by the lib/snp sources; not installed, not for other concerns. */
#pragma once

#include <inttypes.h>
#include <openssl/x509.h>

#include "basic/secret.h"
#include "snp/snp.h"

/* Sets reason and a formatted detail (fmt may be NULL for none). */
void snp_verdict_set(struct snp_verdict *v, enum snp_reason reason, const char *fmt, ...) _printf_(3, 4);
/* Sets the verdict and returns snp_reason_errno(reason). */
int snp_fail(struct snp_verdict *v, enum snp_reason reason, const char *fmt, ...) _printf_(3, 4);
/* The negative errno a reason maps to (0 for OK). */
int snp_reason_errno(enum snp_reason reason);
/* Sets report->product and re-decodes the four TCBs with that product's layout. */
void snp_report_set_product(struct snp_report *report, enum snp_product product);

/* Loads one certificate from DER or PEM (detected by "-----BEGIN"); the whole input must be that
 * one certificate. -EBADMSG otherwise. */
int snp_x509_load(const uint8_t *data, size_t len, X509 **ret);
/* Parses the AMD extensions of a loaded certificate. */
int snp_cert_info_from_x509(X509 *cert, struct snp_cert_info *ret, struct snp_verdict *v);
/* The product a productName names ("Milan-B0" -> Milan), UNKNOWN if none. */
enum snp_product snp_product_from_name(const char *name);

/* As snp_chain_new(), but trusting exactly the root whose DER SHA-256 is root_sha256 (for
 * `product`) instead of the built-in AMD pins. For tests with a synthetic PKI only: not in the
 * public header, so no caller can weaken the pinning by accident. */
int snp_chain_new_with_root(const uint8_t *pem, size_t len, const struct snp_options *opts, enum snp_product product,
                            const uint8_t root_sha256[32], snp_chain **ret, struct snp_verdict *v);

/* The built-in ARK certificate of a product (lib/snp/roots), or NULL. Caller frees. */
X509 *snp_builtin_ark(enum snp_product product);
