/* SPDX-License-Identifier: Apache-2.0 */
#include "x509/x509.h"

#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "basic/cleanup-openssl.h"
#include "basic/secret.h"

static char *bio_to_string(BIO *bio) {
        char *data;
        long len = BIO_get_mem_data(bio, &data);
        if (len < 0)
                return NULL;
        return strndup(data, (size_t) len);
}

int x509_to_pem(X509 *cert, char **ret) {
        _cleanup_(BIO_freep) BIO *bio = BIO_new(BIO_s_mem());
        if (!bio || !PEM_write_bio_X509(bio, cert))
                return -ENOMEM;
        char *s = bio_to_string(bio);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int x509_key_to_pem(EVP_PKEY *key, char **ret) {
        _cleanup_(BIO_freep) BIO *bio = BIO_new(BIO_s_secmem());
        if (!bio || !PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL))
                return -ENOMEM;
        char *s = bio_to_string(bio);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

int x509_to_der(X509 *cert, uint8_t **ret, size_t *ret_len) {
        unsigned char *der = NULL;
        int len = i2d_X509(cert, &der);
        if (len <= 0)
                return -EINVAL;
        uint8_t *copy = malloc((size_t) len);
        if (!copy) {
                OPENSSL_free(der);
                return -ENOMEM;
        }
        memcpy(copy, der, (size_t) len);
        OPENSSL_free(der);
        *ret = copy;
        *ret_len = (size_t) len;
        return 0;
}

int x509_from_pem(const char *pem, size_t len, X509 **ret) {
        _cleanup_(BIO_freep) BIO *bio = BIO_new_mem_buf(pem, (int) len);
        if (!bio)
                return -ENOMEM;
        X509 *c = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (!c)
                return -EBADMSG;
        *ret = c;
        return 0;
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
        _cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        if (!ext || !X509_add_ext(cert, ext, -1))
                return -EINVAL;
        return 0;
}

int x509_issue(const x509_params *p, EVP_PKEY **ret_key, X509 **ret_cert, char **ret_key_pem,
               char **ret_cert_pem) {
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = NULL;
        if (p->subject_key)
                key = EVP_PKEY_up_ref(p->subject_key) == 1 ? p->subject_key : NULL;
        else
                key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", p->curve ?: "P-256");
        _cleanup_(X509_freep) X509 *cert = X509_new();
        int r;

        if (!key || !cert)
                return -ENOMEM;
        if ((p->issuer_key == NULL) != (p->issuer_cert == NULL))
                return -EINVAL;

        X509_set_version(cert, 2);
        /* Random positive 128-bit serial, as go-plugin and Constellation's aTLS do. */
        uint8_t serial[16];
        if (RAND_bytes(serial, sizeof(serial)) != 1)
                return -EIO;
        serial[0] &= 0x7f;
        _cleanup_(BN_freep) BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
        if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)))
                return -ENOMEM;

        X509_gmtime_adj(X509_getm_notBefore(cert), (long) p->not_before_offset_s);
        X509_gmtime_adj(X509_getm_notAfter(cert), (long) (p->lifetime_s > 0 ? p->lifetime_s : 3600));
        X509_set_pubkey(cert, key);

        X509_NAME *name = X509_get_subject_name(cert);
        if (p->organization &&
            !X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *) p->organization, -1, -1, 0))
                return -EINVAL;
        if (p->common_name &&
            !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *) p->common_name, -1, -1, 0))
                return -EINVAL;
        X509 *issuer = p->issuer_cert ? p->issuer_cert : cert;
        if (!X509_set_issuer_name(cert, X509_get_subject_name(issuer)))
                return -EINVAL;

        if (p->is_ca) {
                if ((r = add_ext(cert, issuer, NID_basic_constraints, "critical,CA:TRUE")) < 0 ||
                    (r = add_ext(cert, issuer, NID_key_usage, "critical,digitalSignature,keyCertSign")) < 0)
                        return r;
        }
        if (p->server_auth || p->client_auth) {
                const char *eku = p->server_auth && p->client_auth ? "serverAuth,clientAuth"
                                  : p->server_auth                 ? "serverAuth"
                                                                   : "clientAuth";
                if ((r = add_ext(cert, issuer, NID_ext_key_usage, eku)) < 0)
                        return r;
        }
        if (p->dns_names && p->dns_names[0]) {
                char san[1024] = "";
                for (size_t i = 0; p->dns_names[i]; i++) {
                        size_t used = strlen(san);
                        int n = snprintf(san + used, sizeof(san) - used, "%sDNS:%s", i ? "," : "", p->dns_names[i]);
                        if (n < 0 || (size_t) n >= sizeof(san) - used)
                                return -E2BIG;
                }
                if ((r = add_ext(cert, issuer, NID_subject_alt_name, san)) < 0)
                        return r;
        }
        if (p->extra_oid) {
                _cleanup_(ASN1_OBJECT_freep) ASN1_OBJECT *obj = OBJ_txt2obj(p->extra_oid, 1);
                _cleanup_(ASN1_OCTET_STRING_freep) ASN1_OCTET_STRING *val = ASN1_OCTET_STRING_new();
                if (!obj || !val || !ASN1_OCTET_STRING_set(val, p->extra_value, (int) p->extra_value_len))
                        return -EINVAL;
                _cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext =
                        X509_EXTENSION_create_by_OBJ(NULL, obj, 0, val);
                if (!ext || !X509_add_ext(cert, ext, -1))
                        return -EINVAL;
        }

        if (!X509_sign(cert, p->issuer_key ? p->issuer_key : key, EVP_sha256()))
                return -EIO;

        _cleanup_erase_free_ char *key_pem = NULL;
        _cleanup_free_ char *cert_pem = NULL;
        if (ret_key_pem && (r = x509_key_to_pem(key, &key_pem)) < 0)
                return r;
        if (ret_cert_pem && (r = x509_to_pem(cert, &cert_pem)) < 0)
                return r;

        if (ret_key)
                *ret_key = TAKE_PTR(key);
        if (ret_cert)
                *ret_cert = TAKE_PTR(cert);
        if (ret_key_pem)
                *ret_key_pem = TAKE_PTR(key_pem);
        if (ret_cert_pem)
                *ret_cert_pem = TAKE_PTR(cert_pem);
        return 0;
}
