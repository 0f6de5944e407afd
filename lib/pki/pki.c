/* SPDX-License-Identifier: Apache-2.0 */
/* Cluster PKI and kubelet CSR signing with OpenSSL 3 (pki.h). */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <sys/stat.h>

#include "basic/cleanup-openssl.h"
#include "basic/encoding.h"
#include "basic/fileio.h"
#include "basic/secret.h"
#include "metadata/metadata.h"
#include "pki/pki.h"

#define LAYER "pki"
#define CA_LIFETIME_S (10LL * 365 * 24 * 3600)
#define BACKDATE_S (2 * 3600)
#define ADMIN_LIFETIME_S (365LL * 24 * 3600)
#define MAX_PEM_FILE 65536

DEFINE_TRIVIAL_CLEANUP_FUNC(X509_REQ *, X509_REQ_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(GENERAL_NAMES *, GENERAL_NAMES_free);
static inline void sk_X509_EXTENSION_pop_freep(STACK_OF(X509_EXTENSION) **p) {
        if (*p)
                sk_X509_EXTENSION_pop_free(*p, X509_EXTENSION_free);
}

void pki_ca_done(pki_ca *ca) {
        if (!ca)
                return;
        EVP_PKEY_free(ca->key);
        X509_free(ca->cert);
        *ca = (pki_ca){ 0 };
}

static int crypto_fail(ct_error *err, const char *what) {
        unsigned long e = ERR_get_error();
        char buf[256] = "";
        if (e)
                ERR_error_string_n(e, buf, sizeof buf);
        ERR_clear_error();
        return ct_error_set(err, -EIO, LAYER, "crypto", "%s failed%s%s", what, e ? ": " : "", buf);
}

static EVP_PKEY *gen_p256(void) {
        return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

static EVP_PKEY *gen_rsa2048(void) {
        return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, NULL, NULL, 0);
        _cleanup_(X509_EXTENSION_freep) X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        if (!ext || !X509_add_ext(cert, ext, -1))
                return -EIO;
        return 0;
}

static int set_serial(X509 *cert) {
        uint8_t rnd[16];
        if (RAND_bytes(rnd, sizeof rnd) != 1)
                return -EIO;
        rnd[0] &= 0x7f; /* positive */
        rnd[0] |= 0x01; /* and 128 bits long */
        _cleanup_(BN_freep) BIGNUM *bn = BN_bin2bn(rnd, sizeof rnd, NULL);
        if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)))
                return -EIO;
        return 0;
}

static int set_validity(X509 *cert, time_t now, int64_t backdate_s, int64_t lifetime_s) {
        if (!X509_time_adj_ex(X509_getm_notBefore(cert), 0, (long) -backdate_s, &now) ||
            !X509_time_adj_ex(X509_getm_notAfter(cert), (int) (lifetime_s / 86400), (long) (lifetime_s % 86400), &now))
                return -EIO;
        return 0;
}

static X509_NAME *make_name(const char *org, const char *cn) {
        X509_NAME *n = X509_NAME_new();
        if (!n)
                return NULL;
        if ((org && !X509_NAME_add_entry_by_NID(n, NID_organizationName, MBSTRING_UTF8, (const unsigned char *) org,
                                                -1, -1, 0)) ||
            (cn && !X509_NAME_add_entry_by_NID(n, NID_commonName, MBSTRING_UTF8, (const unsigned char *) cn, -1, -1,
                                               0))) {
                X509_NAME_free(n);
                return NULL;
        }
        return n;
}

/* A self-signed CA certificate for key. */
static int make_ca_cert(EVP_PKEY *key, const char *cn, X509 **ret) {
        _cleanup_(X509_freep) X509 *c = X509_new();
        _cleanup_(X509_NAME_freep) X509_NAME *name = make_name(NULL, cn);
        if (!c || !name || !X509_set_version(c, X509_VERSION_3) || set_serial(c) < 0 ||
            set_validity(c, time(NULL), BACKDATE_S, CA_LIFETIME_S) < 0 || !X509_set_subject_name(c, name) ||
            !X509_set_issuer_name(c, name) || !X509_set_pubkey(c, key))
                return -EIO;
        if (add_ext(c, NULL, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
            add_ext(c, NULL, NID_key_usage, "critical,digitalSignature,keyEncipherment,keyCertSign") < 0 ||
            add_ext(c, NULL, NID_subject_key_identifier, "hash") < 0)
                return -EIO;
        if (X509_sign(c, key, EVP_sha256()) <= 0)
                return -EIO;
        *ret = TAKE_PTR(c);
        return 0;
}

/* A leaf certificate for pubkey signed by ca. ips: GENERAL_NAMES of IP addresses (may be NULL). */
static int make_leaf_cert(const pki_ca *ca, EVP_PKEY *pubkey, X509_NAME *subject, time_t now, int64_t backdate_s,
                          int64_t lifetime_s, const char *eku, GENERAL_NAMES *ips, X509 **ret) {
        _cleanup_(X509_freep) X509 *c = X509_new();
        if (!c || !X509_set_version(c, X509_VERSION_3) || set_serial(c) < 0 ||
            set_validity(c, now, backdate_s, lifetime_s) < 0 || !X509_set_subject_name(c, subject) ||
            !X509_set_issuer_name(c, X509_get_subject_name(ca->cert)) || !X509_set_pubkey(c, pubkey))
                return -EIO;
        if (add_ext(c, ca->cert, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
            add_ext(c, ca->cert, NID_key_usage, "critical,digitalSignature,keyEncipherment") < 0 ||
            add_ext(c, ca->cert, NID_ext_key_usage, eku) < 0 ||
            add_ext(c, ca->cert, NID_authority_key_identifier, "keyid:always") < 0)
                return -EIO;
        if (ips && sk_GENERAL_NAME_num(ips) > 0 && !X509_add1_ext_i2d(c, NID_subject_alt_name, ips, 0, 0))
                return -EIO;
        if (X509_sign(c, ca->key, EVP_sha256()) <= 0)
                return -EIO;
        *ret = TAKE_PTR(c);
        return 0;
}

/* --- files --- */

/* mkdir -p of the parents of path (0755), then path itself (0700). */
static int mkdir_parents(const char *path) {
        _cleanup_free_ char *copy = strdup(path);
        if (!copy)
                return -ENOMEM;
        for (char *p = copy + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = 0;
                if (mkdir(copy, 0755) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        return 0;
}

static int mkdir_private(const char *path) {
        if (mkdir(path, 0700) < 0 && errno != EEXIST)
                return -errno;
        struct stat st;
        if (stat(path, &st) < 0)
                return -errno;
        return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int key_to_pem(EVP_PKEY *key, bool public_only, char **ret, size_t *ret_len) {
        _cleanup_(BIO_freep) BIO *b = BIO_new(BIO_s_mem());
        if (!b)
                return -ENOMEM;
        if (public_only ? !PEM_write_bio_PUBKEY(b, key) : !PEM_write_bio_PKCS8PrivateKey(b, key, NULL, NULL, 0, NULL, NULL))
                return -EIO;
        BUF_MEM *mem = NULL;
        BIO_get_mem_ptr(b, &mem);
        char *s = malloc(mem->length + 1);
        if (!s) {
                erase_memory(mem->data, mem->length);
                return -ENOMEM;
        }
        memcpy(s, mem->data, mem->length);
        s[mem->length] = 0;
        *ret_len = mem->length;
        erase_memory(mem->data, mem->length); /* the private key text in the BIO */
        *ret = s;
        return 0;
}

static int cert_to_pem(X509 *cert, char **ret, size_t *ret_len) {
        _cleanup_(BIO_freep) BIO *b = BIO_new(BIO_s_mem());
        if (!b || !PEM_write_bio_X509(b, cert))
                return -EIO;
        BUF_MEM *mem = NULL;
        BIO_get_mem_ptr(b, &mem);
        char *s = strndup(mem->data, mem->length);
        if (!s)
                return -ENOMEM;
        *ret = s;
        *ret_len = mem->length;
        return 0;
}

static int write_key(const char *path, EVP_PKEY *key, ct_error *err) {
        _cleanup_erase_free_ char *pem = NULL;
        size_t len = 0;
        if (key_to_pem(key, false, &pem, &len) < 0)
                return crypto_fail(err, "encoding a private key");
        int r = write_file_atomic(path, pem, len, 0600);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "io", "%s: %s", path, strerror(-r));
        return 0;
}

static int write_public(const char *path, const char *pem, size_t len, ct_error *err) {
        int r = write_file_atomic(path, pem, len, 0644);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "io", "%s: %s", path, strerror(-r));
        return 0;
}

static int exists(const char *path) {
        return access(path, F_OK) == 0 ? 1 : (errno == ENOENT ? 0 : -errno);
}

static int load_key(const char *path, EVP_PKEY **ret, ct_error *err) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0;
        int r = read_full_file(path, MAX_PEM_FILE, &buf, &len);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "io", "%s: %s", path, strerror(-r));
        _cleanup_(BIO_freep) BIO *b = BIO_new_mem_buf(buf, (int) len);
        EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
        erase_memory(buf, len);
        if (!k) {
                ERR_clear_error();
                return ct_error_set(err, -EBADMSG, LAYER, "pki-inconsistent", "%s: not a PEM private key", path);
        }
        *ret = k;
        return 0;
}

static int load_cert(const char *path, X509 **ret, ct_error *err) {
        _cleanup_free_ uint8_t *buf = NULL;
        size_t len = 0;
        int r = read_full_file(path, MAX_PEM_FILE, &buf, &len);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "io", "%s: %s", path, strerror(-r));
        _cleanup_(BIO_freep) BIO *b = BIO_new_mem_buf(buf, (int) len);
        X509 *c = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
        if (!c) {
                ERR_clear_error();
                return ct_error_set(err, -EBADMSG, LAYER, "pki-inconsistent", "%s: not a PEM certificate", path);
        }
        *ret = c;
        return 0;
}

int pki_load_ca(const char *dir, const char *name, pki_ca *ret, ct_error *err) {
        _cleanup_free_ char *crt = NULL, *key = NULL;
        if (asprintf(&crt, "%s/%s.crt", dir, name) < 0 || asprintf(&key, "%s/%s.key", dir, name) < 0)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        _cleanup_(pki_ca_done) pki_ca ca = { 0 };
        int r = load_cert(crt, &ca.cert, err);
        if (r < 0)
                return r;
        if ((r = load_key(key, &ca.key, err)) < 0)
                return r;
        if (X509_check_private_key(ca.cert, ca.key) != 1) {
                ERR_clear_error();
                return ct_error_set(err, -EBADMSG, LAYER, "pki-inconsistent", "%s does not belong to %s", key, crt);
        }
        if (X509_check_ca(ca.cert) == 0)
                return ct_error_set(err, -EBADMSG, LAYER, "pki-inconsistent", "%s is not a CA certificate", crt);
        *ret = ca;
        ca = (pki_ca){ 0 };
        return 0;
}

/* Creates <dir>/<name>.{crt,key} unless both exist and load. */
static int ensure_ca(const char *dir, const char *name, const char *cn, ct_error *err) {
        _cleanup_free_ char *crt = NULL, *key = NULL;
        if (asprintf(&crt, "%s/%s.crt", dir, name) < 0 || asprintf(&key, "%s/%s.key", dir, name) < 0)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        int ec = exists(crt), ek = exists(key);
        if (ec < 0 || ek < 0)
                return ct_error_set(err, ec < 0 ? ec : ek, LAYER, "io", "%s: %s", ec < 0 ? crt : key,
                                    strerror(-(ec < 0 ? ec : ek)));
        if (ec && ek) {
                _cleanup_(pki_ca_done) pki_ca ca = { 0 };
                return pki_load_ca(dir, name, &ca, err);
        }
        if (ec || ek)
                return ct_error_set(err, -EEXIST, LAYER, "pki-inconsistent",
                                    "%s exists without %s: refusing to replace half a CA", ec ? crt : key,
                                    ec ? key : crt);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = gen_p256();
        _cleanup_(X509_freep) X509 *c = NULL;
        if (!k || make_ca_cert(k, cn, &c) < 0)
                return crypto_fail(err, "creating a CA");
        _cleanup_free_ char *pem = NULL;
        size_t len;
        if (cert_to_pem(c, &pem, &len) < 0)
                return crypto_fail(err, "encoding a certificate");
        /* Key first: a crash between the two leaves a key without certificate, refused above, never
         * a certificate whose key is lost. */
        int r = write_key(key, k, err);
        if (r < 0)
                return r;
        return write_public(crt, pem, len, err);
}

static int ensure_sa(const char *dir, ct_error *err) {
        _cleanup_free_ char *pub = NULL, *key = NULL;
        if (asprintf(&pub, "%s/sa.pub", dir) < 0 || asprintf(&key, "%s/sa.key", dir) < 0)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        int ep = exists(pub), ek = exists(key);
        if (ep < 0 || ek < 0)
                return ct_error_set(err, ep < 0 ? ep : ek, LAYER, "io", "%s: cannot check", ep < 0 ? pub : key);
        if (ep && ek) {
                _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = NULL;
                return load_key(key, &k, err);
        }
        if (ep || ek)
                return ct_error_set(err, -EEXIST, LAYER, "pki-inconsistent",
                                    "%s exists without %s: refusing to replace half a key pair", ep ? pub : key,
                                    ep ? key : pub);
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = gen_rsa2048();
        if (!k)
                return crypto_fail(err, "creating the service-account key");
        _cleanup_free_ char *pem = NULL;
        size_t len;
        if (key_to_pem(k, true, &pem, &len) < 0)
                return crypto_fail(err, "encoding the service-account public key");
        int r = write_key(key, k, err);
        if (r < 0)
                return r;
        return write_public(pub, pem, len, err);
}

int pki_create(const char *dir, ct_error *err) {
        if (isempty(dir))
                return ct_error_set(err, -EINVAL, LAYER, "bad-argument", "no PKI directory");
        _cleanup_free_ char *etcd = NULL;
        if (asprintf(&etcd, "%s/etcd", dir) < 0)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        int r = mkdir_parents(dir);
        if (r >= 0)
                r = mkdir_private(dir);
        if (r < 0)
                return ct_error_set(err, r, LAYER, "io", "%s: %s", dir, strerror(-r));
        if ((r = mkdir_private(etcd)) < 0)
                return ct_error_set(err, r, LAYER, "io", "%s: %s", etcd, strerror(-r));
        if ((r = ensure_ca(dir, PKI_CA_KUBERNETES, "kubernetes", err)) < 0 ||
            (r = ensure_ca(dir, PKI_CA_FRONT_PROXY, "front-proxy-ca", err)) < 0 ||
            (r = ensure_ca(dir, PKI_CA_ETCD, "etcd-ca", err)) < 0 || (r = ensure_sa(dir, err)) < 0)
                return r;
        return 0;
}

/* --- etcd leaf certificates --- */

static int add_san(GENERAL_NAMES *names, bool ip, const char *value) {
        GENERAL_NAME *g = NULL;
        if (ip) {
                ASN1_OCTET_STRING *o = a2i_IPADDRESS(value);
                if (!o)
                        return -EINVAL;
                g = GENERAL_NAME_new();
                if (!g) {
                        ASN1_OCTET_STRING_free(o);
                        return -ENOMEM;
                }
                GENERAL_NAME_set0_value(g, GEN_IPADD, o);
        } else {
                ASN1_IA5STRING *s = ASN1_IA5STRING_new();
                if (!s || !ASN1_STRING_set(s, value, -1)) {
                        ASN1_IA5STRING_free(s);
                        return -ENOMEM;
                }
                g = GENERAL_NAME_new();
                if (!g) {
                        ASN1_IA5STRING_free(s);
                        return -ENOMEM;
                }
                GENERAL_NAME_set0_value(g, GEN_DNS, s);
        }
        if (!sk_GENERAL_NAME_push(names, g)) {
                GENERAL_NAME_free(g);
                return -ENOMEM;
        }
        return 0;
}

/* <dir>/<name>.{crt,key}: a fresh P-256 key and a leaf of ca, unless both files exist, the
 * certificate was issued by ca and is valid for another 30 days (a restart keeps what etcd serves). */
static int ensure_leaf(const char *dir, const char *name, const pki_ca *ca, const char *org, const char *cn,
                       const char *eku, GENERAL_NAMES *sans, ct_error *err) {
        _cleanup_free_ char *crt = NULL, *key = NULL;
        if (asprintf(&crt, "%s/%s.crt", dir, name) < 0 || asprintf(&key, "%s/%s.key", dir, name) < 0)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        if (exists(crt) > 0 && exists(key) > 0) {
                _cleanup_(X509_freep) X509 *c = NULL;
                ct_error ignored = CT_ERROR_INIT;
                /* Kept if issued by this CA and valid for another 30 days (else renewed: etcd reads its
                 * certificate files again for new connections). */
                time_t renew = time(NULL) + 30 * 24 * 3600;
                if (load_cert(crt, &c, &ignored) >= 0 && X509_check_issued(ca->cert, c) == X509_V_OK &&
                    X509_cmp_time(X509_get0_notAfter(c), &renew) > 0)
                        return 0;
        }
        _cleanup_(EVP_PKEY_freep) EVP_PKEY *k = gen_p256();
        _cleanup_(X509_NAME_freep) X509_NAME *subject = make_name(org, cn);
        _cleanup_(X509_freep) X509 *c = NULL;
        if (!k || !subject || make_leaf_cert(ca, k, subject, time(NULL), BACKDATE_S, ADMIN_LIFETIME_S, eku, sans, &c) < 0)
                return crypto_fail(err, "issuing an etcd certificate");
        _cleanup_free_ char *pem = NULL;
        size_t len;
        if (cert_to_pem(c, &pem, &len) < 0)
                return crypto_fail(err, "encoding a certificate");
        int r = write_key(key, k, err);
        if (r < 0)
                return r;
        return write_public(crt, pem, len, err);
}

int pki_etcd_certs(const char *dir, const char *node_name, const char *const *ips, size_t n_ips, ct_error *err) {
        if (isempty(dir) || isempty(node_name) || !metadata_valid_node_name(node_name))
                return ct_error_set(err, -EINVAL, LAYER, "bad-argument", "etcd certificates need a PKI directory and a "
                                                                        "DNS-1123 node name");
        _cleanup_(pki_ca_done) pki_ca ca = { 0 };
        int r = pki_load_ca(dir, PKI_CA_ETCD, &ca, err);
        if (r < 0)
                return r;
        _cleanup_(GENERAL_NAMES_freep) GENERAL_NAMES *server = sk_GENERAL_NAME_new_null();
        _cleanup_(GENERAL_NAMES_freep) GENERAL_NAMES *peer = sk_GENERAL_NAME_new_null();
        if (!server || !peer)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        r = add_san(server, false, "localhost");
        if (r >= 0)
                r = add_san(server, false, node_name);
        if (r >= 0)
                r = add_san(server, true, "127.0.0.1");
        if (r >= 0)
                r = add_san(server, true, "::1");
        if (r >= 0)
                r = add_san(peer, false, node_name);
        for (size_t i = 0; r >= 0 && i < n_ips; i++) {
                r = add_san(server, true, ips[i]);
                if (r >= 0)
                        r = add_san(peer, true, ips[i]);
        }
        if (r < 0)
                return ct_error_set(err, -EINVAL, LAYER, "bad-argument", "an etcd certificate's address is not an IP "
                                                                        "address");
        if ((r = ensure_leaf(dir, PKI_ETCD_SERVER, &ca, NULL, node_name, "serverAuth,clientAuth", server, err)) < 0 ||
            (r = ensure_leaf(dir, PKI_ETCD_PEER, &ca, NULL, node_name, "serverAuth,clientAuth", peer, err)) < 0 ||
            (r = ensure_leaf(dir, PKI_ETCD_CLIENT, &ca, PKI_ETCD_CLIENT_ORG, PKI_ETCD_CLIENT_CN, "clientAuth", NULL,
                             err)) < 0 ||
            (r = ensure_leaf(dir, PKI_ETCD_APISERVER_CLIENT, &ca, PKI_ADMIN_ORG, "kube-apiserver-etcd-client",
                             "clientAuth", NULL, err)) < 0)
                return r;
        return 0;
}

/* --- kubeconfig --- */

static char *b64_pem(const char *pem, size_t len) {
        return base64_encode(pem, len, BASE64_STD);
}

int pki_admin_kubeconfig(const pki_ca *ca, const char *cluster_name, const char *endpoint, char **ret_yaml,
                         ct_error *err) {
        if (!ca || !ca->key || !ca->cert || !ret_yaml)
                return ct_error_set(err, -EINVAL, LAYER, "bad-argument", "no CA");
        /* Both go into YAML unquoted: refuse anything but names and addresses. */
        if (!metadata_valid_node_name(cluster_name))
                return ct_error_set(err, -EINVAL, LAYER, "bad-argument", "cluster name is not a DNS-1123 name");
        bool v6 = endpoint && strchr(endpoint, ':');
        if (!endpoint || !(metadata_valid_ip(endpoint) || metadata_valid_node_name(endpoint)))
                return ct_error_set(err, -EINVAL, LAYER, "bad-argument", "endpoint is not a host name or address");

        _cleanup_(EVP_PKEY_freep) EVP_PKEY *key = gen_p256();
        _cleanup_(X509_NAME_freep) X509_NAME *subj = make_name(PKI_ADMIN_ORG, PKI_ADMIN_CN);
        _cleanup_(X509_freep) X509 *cert = NULL;
        if (!key || !subj ||
            make_leaf_cert(ca, key, subj, time(NULL), BACKDATE_S, ADMIN_LIFETIME_S, "clientAuth", NULL, &cert) < 0)
                return crypto_fail(err, "issuing the admin certificate");

        _cleanup_free_ char *ca_pem = NULL, *cert_pem = NULL, *ca_b64 = NULL, *cert_b64 = NULL;
        _cleanup_erase_free_ char *key_pem = NULL, *key_b64 = NULL;
        size_t ca_len, cert_len, key_len;
        if (cert_to_pem(ca->cert, &ca_pem, &ca_len) < 0 || cert_to_pem(cert, &cert_pem, &cert_len) < 0 ||
            key_to_pem(key, false, &key_pem, &key_len) < 0)
                return crypto_fail(err, "encoding the kubeconfig");
        ca_b64 = b64_pem(ca_pem, ca_len);
        cert_b64 = b64_pem(cert_pem, cert_len);
        key_b64 = b64_pem(key_pem, key_len);
        if (!ca_b64 || !cert_b64 || !key_b64)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        char *yaml = NULL;
        if (asprintf(&yaml,
                     "apiVersion: v1\n"
                     "kind: Config\n"
                     "clusters:\n"
                     "- cluster:\n"
                     "    certificate-authority-data: %s\n"
                     "    server: https://%s%s%s:%d\n"
                     "  name: %s\n"
                     "contexts:\n"
                     "- context:\n"
                     "    cluster: %s\n"
                     "    user: %s\n"
                     "  name: %s@%s\n"
                     "current-context: %s@%s\n"
                     "preferences: {}\n"
                     "users:\n"
                     "- name: %s\n"
                     "  user:\n"
                     "    client-certificate-data: %s\n"
                     "    client-key-data: %s\n",
                     ca_b64, v6 ? "[" : "", endpoint, v6 ? "]" : "", PKI_API_SERVER_PORT, cluster_name, cluster_name,
                     PKI_ADMIN_CN, PKI_ADMIN_CN, cluster_name, PKI_ADMIN_CN, cluster_name, PKI_ADMIN_CN, cert_b64,
                     key_b64) < 0)
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        *ret_yaml = yaml;
        return 0;
}

/* --- kubelet CSR signing --- */

static int name_entry(X509_NAME *n, int idx, int *ret_nid, const char **ret_s, size_t *ret_len) {
        X509_NAME_ENTRY *e = X509_NAME_get_entry(n, idx);
        if (!e)
                return -EINVAL;
        ASN1_STRING *d = X509_NAME_ENTRY_get_data(e);
        int t = ASN1_STRING_type(d);
        if (t != V_ASN1_UTF8STRING && t != V_ASN1_PRINTABLESTRING)
                return -EINVAL;
        *ret_nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
        *ret_s = (const char *) ASN1_STRING_get0_data(d);
        *ret_len = (size_t) ASN1_STRING_length(d);
        return 0;
}

int pki_sign_node_csr(const pki_ca *ca, const uint8_t *csr_der, size_t csr_len, const char *expected_node_name,
                      time_t now, uint8_t **ret_der, size_t *ret_der_len, ct_error *err) {
        if (!ca || !ca->key || !ca->cert || !ret_der || !ret_der_len)
                return ct_error_set(err, -EINVAL, LAYER, "bad-argument", "no CA");
        if (!csr_der || csr_len == 0 || csr_len > PKI_MAX_CSR_SIZE)
                return ct_error_set(err, -EBADMSG, LAYER, "csr-malformed",
                                    "certificate request has %zu bytes, 1..%u allowed", csr_len, PKI_MAX_CSR_SIZE);
        const unsigned char *p = csr_der;
        _cleanup_(X509_REQ_freep) X509_REQ *req = d2i_X509_REQ(NULL, &p, (long) csr_len);
        if (!req || (size_t) (p - csr_der) != csr_len) {
                ERR_clear_error();
                return ct_error_set(err, -EBADMSG, LAYER, "csr-malformed",
                                    req ? "certificate request has trailing bytes"
                                        : "certificate request is not DER PKCS#10");
        }
        EVP_PKEY *pub = X509_REQ_get0_pubkey(req);
        if (!pub) {
                ERR_clear_error();
                return ct_error_set(err, -EBADMSG, LAYER, "csr-malformed", "certificate request has no usable key");
        }
        char group[64] = "";
        size_t glen = 0;
        if (!EVP_PKEY_is_a(pub, "EC") ||
            !EVP_PKEY_get_utf8_string_param(pub, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &glen) ||
            !streq(group, "prime256v1")) {
                ERR_clear_error();
                return ct_error_set(err, -EPERM, LAYER, "csr-key-type", "key is %s%s%s, only ECDSA P-256 is accepted",
                                    EVP_PKEY_get0_type_name(pub) ?: "unknown", group[0] ? " " : "", group);
        }
        if (X509_REQ_verify(req, pub) != 1) {
                ERR_clear_error();
                return ct_error_set(err, -EPERM, LAYER, "csr-signature",
                                    "the certificate request's signature does not verify with its key");
        }

        /* Subject: exactly O=system:nodes and CN=system:node:<name>, in either order. */
        X509_NAME *subj = X509_REQ_get_subject_name(req);
        const char *org = NULL, *cn = NULL;
        size_t org_len = 0, cn_len = 0;
        if (X509_NAME_entry_count(subj) != 2)
                return ct_error_set(err, -EPERM, LAYER, "csr-subject",
                                    "subject has %d attributes, expected O=%s and CN=%s<name>",
                                    X509_NAME_entry_count(subj), PKI_NODE_ORG, PKI_NODE_CN_PREFIX);
        for (int i = 0; i < 2; i++) {
                int nid;
                const char *s;
                size_t l;
                if (name_entry(subj, i, &nid, &s, &l) < 0)
                        return ct_error_set(err, -EPERM, LAYER, "csr-subject", "subject attribute %d is not a string", i);
                if (nid == NID_organizationName && !org)
                        org = s, org_len = l;
                else if (nid == NID_commonName && !cn)
                        cn = s, cn_len = l;
                else
                        return ct_error_set(err, -EPERM, LAYER, "csr-subject",
                                            "subject attribute %d is not O or CN (or is repeated)", i);
        }
        if (!org || !cn)
                return ct_error_set(err, -EPERM, LAYER, "csr-subject", "subject lacks O or CN");
        if (org_len != strlen(PKI_NODE_ORG) || memcmp(org, PKI_NODE_ORG, org_len) != 0)
                return ct_error_set(err, -EPERM, LAYER, "csr-subject", "subject O is not %s", PKI_NODE_ORG);
        size_t pl = strlen(PKI_NODE_CN_PREFIX);
        if (cn_len <= pl || memcmp(cn, PKI_NODE_CN_PREFIX, pl) != 0)
                return ct_error_set(err, -EPERM, LAYER, "csr-subject", "subject CN does not start with %s",
                                    PKI_NODE_CN_PREFIX);
        char node[METADATA_NAME_MAX + 1];
        if (cn_len - pl > METADATA_NAME_MAX || memchr(cn, 0, cn_len))
                return ct_error_set(err, -EPERM, LAYER, "csr-subject", "node name in CN is too long or has NUL");
        memcpy(node, cn + pl, cn_len - pl);
        node[cn_len - pl] = 0;
        if (!metadata_valid_node_name(node))
                return ct_error_set(err, -EPERM, LAYER, "csr-subject", "node name in CN is not a DNS-1123 name");
        if (expected_node_name && !streq(node, expected_node_name))
                return ct_error_set(err, -EPERM, LAYER, "csr-subject", "CN names node \"%s\", expected \"%s\"", node,
                                    expected_node_name);

        /* Requested extensions: subjectAltName with IP addresses only. */
        _cleanup_(sk_X509_EXTENSION_pop_freep) STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(req);
        _cleanup_(GENERAL_NAMES_freep) GENERAL_NAMES *ips = NULL;
        for (int i = 0; exts && i < sk_X509_EXTENSION_num(exts); i++) {
                X509_EXTENSION *e = sk_X509_EXTENSION_value(exts, i);
                int nid = OBJ_obj2nid(X509_EXTENSION_get_object(e));
                if (nid != NID_subject_alt_name || ips)
                        return ct_error_set(err, -EPERM, LAYER, "csr-extensions",
                                            "requested extension %s is not accepted (only one subjectAltName)",
                                            nid != NID_undef ? OBJ_nid2sn(nid) : "(unknown OID)");
                ips = X509V3_EXT_d2i(e);
                if (!ips) {
                        ERR_clear_error();
                        return ct_error_set(err, -EBADMSG, LAYER, "csr-malformed", "subjectAltName does not parse");
                }
                if (sk_GENERAL_NAME_num(ips) > (int) PKI_MAX_CSR_IPS)
                        return ct_error_set(err, -EPERM, LAYER, "csr-extensions",
                                            "subjectAltName has %d names, at most %u IP addresses accepted",
                                            sk_GENERAL_NAME_num(ips), PKI_MAX_CSR_IPS);
                for (int j = 0; j < sk_GENERAL_NAME_num(ips); j++) {
                        GENERAL_NAME *g = sk_GENERAL_NAME_value(ips, j);
                        int len = g->type == GEN_IPADD ? ASN1_STRING_length(g->d.iPAddress) : 0;
                        if (g->type != GEN_IPADD || (len != 4 && len != 16))
                                return ct_error_set(err, -EPERM, LAYER, "csr-extensions",
                                                    "subjectAltName entry %d is not an IP address", j);
                }
        }

        _cleanup_(X509_freep) X509 *cert = NULL;
        if (make_leaf_cert(ca, pub, subj, now, PKI_NODE_CERT_BACKDATE_S, PKI_NODE_CERT_LIFETIME_S,
                           "clientAuth,serverAuth", ips, &cert) < 0)
                return crypto_fail(err, "issuing the kubelet certificate");
        unsigned char *der = NULL;
        int dl = i2d_X509(cert, &der);
        if (dl <= 0)
                return crypto_fail(err, "encoding the kubelet certificate");
        uint8_t *copy = malloc((size_t) dl);
        if (!copy) {
                OPENSSL_free(der);
                return ct_error_set(err, -ENOMEM, LAYER, "internal", "out of memory");
        }
        memcpy(copy, der, (size_t) dl);
        OPENSSL_free(der);
        *ret_der = copy;
        *ret_der_len = (size_t) dl;
        return 0;
}
