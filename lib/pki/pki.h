/* SPDX-License-Identifier: Apache-2.0 */
/* The cluster PKI a control plane creates at init (Constellation lets kubeadm make it; kubeadm's
 * file layout is kept so `kubeadm init` finds the CAs and keeps them, "external CA" mode without
 * the CA being external):
 *
 *   <dir>/ca.crt, ca.key                       Kubernetes CA         CN=kubernetes
 *   <dir>/sa.key, sa.pub                       service-account key pair (RSA-2048, PKCS#8 / SPKI PEM)
 *   <dir>/front-proxy-ca.crt, .key             front-proxy CA        CN=front-proxy-ca
 *   <dir>/etcd/ca.crt, etcd/ca.key             etcd CA               CN=etcd-ca
 *
 * CA keys are ECDSA P-256 (kubeadm's ECDSA-P256 encryption algorithm), CA certificates valid
 * now-2h .. +10 years (kubeadm's CA lifetime), basicConstraints CA:TRUE critical, keyUsage
 * digitalSignature, keyEncipherment, keyCertSign critical, SKID. The service-account key is RSA-2048
 * because RS256 is what every ServiceAccount token consumer (OIDC discovery) accepts.
 * Private keys are written 0600 (directories 0700), through a temp file + rename, and wiped from
 * memory; certificates and sa.pub 0644.
 *
 * etcd (the control planes' shared store, lib/etcd) gets leaf certificates of the etcd CA, issued by
 * each control plane for itself with pki_etcd_certs() (kubeadm's names where kubeadm has them):
 *   <dir>/etcd/server.crt, .key                CN=<node>, server+client auth, SANs localhost, <node>,
 *                                              127.0.0.1, ::1, the node's IPs (etcd's client URLs)
 *   <dir>/etcd/peer.crt, .key                  CN=<node>, server+client auth, SANs <node>, the node's
 *                                              IPs (etcd's peer URLs: members authenticate each other)
 *   <dir>/etcd/constellation-client.crt, .key  O=constellation, CN=constellation-node-services, client
 *                                              auth: the join service, key service and bootstrapper
 *   <dir>/apiserver-etcd-client.crt, .key      O=system:masters, CN=kube-apiserver-etcd-client (for
 *                                              kubeadm's external etcd)
 * P-256 keys, valid now-2h .. +1 year.
 *
 * The admin kubeconfig carries a client certificate O=system:masters, CN=kubernetes-admin (kubeadm's
 * admin.conf before 1.29, and what Constellation hands to its CLI) signed by the Kubernetes CA, with
 * server https://<endpoint>:6443.
 *
 * pki_sign_node_csr() is the join service's kubelet certificate issuance (Constellation
 * joinservice/internal/kubernetesca): every refusal has its reason. */
#pragma once

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <time.h>

#include "basic/error.h"
#include "basic/macro.h"

#define PKI_DEFAULT_DIR "/etc/kubernetes/pki"
#define PKI_API_SERVER_PORT 6443
#define PKI_ADMIN_CN "kubernetes-admin"
#define PKI_ADMIN_ORG "system:masters"
#define PKI_NODE_ORG "system:nodes"
#define PKI_NODE_CN_PREFIX "system:node:"
#define PKI_MAX_CSR_SIZE 16384u
#define PKI_MAX_CSR_IPS 8u
/* Kubelet certificates: valid from now-2h (clock skew) to now+1 year (Constellation). */
#define PKI_NODE_CERT_BACKDATE_S (2 * 3600)
#define PKI_NODE_CERT_LIFETIME_S (365 * 24 * 3600)

/* A CA held in memory. */
typedef struct pki_ca {
        EVP_PKEY *key;
        X509 *cert;
} pki_ca;
void pki_ca_done(pki_ca *ca);

/* Which of kubeadm's CAs (file base name under the PKI dir). */
#define PKI_CA_KUBERNETES "ca"
#define PKI_CA_FRONT_PROXY "front-proxy-ca"
#define PKI_CA_ETCD "etcd/ca"

/* Creates the PKI under dir (made 0700 if missing). Idempotent for convergence after a crash: a
 * CA or key pair whose files both exist and load (certificate and key matching) is kept; one with
 * a single file present, or files that do not load or match, is refused ("pki-inconsistent") rather
 * than overwritten, since a CA other nodes may already trust must not change silently.
 * Reasons (layer "pki"): "io", "crypto", "pki-inconsistent". */
int pki_create(const char *dir, ct_error *err);

#define PKI_ETCD_SERVER "etcd/server"
#define PKI_ETCD_PEER "etcd/peer"
#define PKI_ETCD_CLIENT "etcd/constellation-client"
#define PKI_ETCD_CLIENT_ORG "constellation"
#define PKI_ETCD_CLIENT_CN "constellation-node-services"
#define PKI_ETCD_APISERVER_CLIENT "apiserver-etcd-client"

/* Issues this node's etcd certificates (above) from <dir>/etcd/ca.{crt,key}; keeps a pair that
 * exists, was issued by that CA and is valid for another 30 days (renewed on a bootstrapper start
 * after that). ips: the node's addresses (may be 0). Reasons: "bad-argument",
 * "io", "crypto", "pki-inconsistent". */
int pki_etcd_certs(const char *dir, const char *node_name, const char *const *ips, size_t n_ips, ct_error *err);

/* Loads <dir>/<name>.crt and .key (name: PKI_CA_*), checking that they match and that the
 * certificate is a CA. */
int pki_load_ca(const char *dir, const char *name, pki_ca *ret, ct_error *err);

/* The admin kubeconfig (YAML) for cluster_name with server https://<endpoint>:6443 (IPv6 endpoints
 * are bracketed), a fresh P-256 client key and certificate O=system:masters, CN=kubernetes-admin
 * signed by ca (valid now-2h .. +1 year). The text holds a private key: free it with
 * erase_and_free(). Reasons: "bad-argument", "crypto". */
int pki_admin_kubeconfig(const pki_ca *ca, const char *cluster_name, const char *endpoint, char **ret_yaml,
                         ct_error *err);

/* Signs a kubelet CSR (DER PKCS#10) with the Kubernetes CA, as of `now`:
 *   - DER exactly, at most PKI_MAX_CSR_SIZE, no trailing bytes               "csr-malformed"
 *   - the CSR's self-signature verifies                                        "csr-signature"
 *   - the key is ECDSA P-256                                                   "csr-key-type"
 *   - subject is exactly O=system:nodes, CN=system:node:<name>, <name> a DNS-1123 subdomain,
 *     and equal to expected_node_name when that is given                       "csr-subject"
 *   - the only requested extension is subjectAltName with at most PKI_MAX_CSR_IPS IP addresses
 *     (DNS names, URIs, e-mails refused)                                       "csr-extensions"
 * The certificate: serial 128 random bits, validity now-2h .. now+1y, basicConstraints CA:FALSE,
 * keyUsage digitalSignature+keyEncipherment, extKeyUsage clientAuth+serverAuth, the CSR's IP SANs,
 * AKID of the CA. Returns DER in *ret_der. */
int pki_sign_node_csr(const pki_ca *ca, const uint8_t *csr_der, size_t csr_len, const char *expected_node_name,
                      time_t now, uint8_t **ret_der, size_t *ret_der_len, ct_error *err);
