# The local cluster itself: QEMU VMs (constellation_qemu_infrastructure) and the cluster initialised on
# them (constellation_cluster). Off by default, so that `terraform apply` of this directory only reads
# the release; with -var cluster=true it boots 1 control plane + 1 worker from the published image (a
# node image built by image/build/build-image.sh with the node programs, published with
# --reference disk.raw and the disk beside info.json). `bash examples/run-example.sh --cluster` does
# all of that (README "The local cluster").
#
# The secrets are write-only inputs: Terraform passes them from these variables at every apply and
# never stores them in state. Give them from a secret store, e.g.
#   export TF_VAR_init_secret=$(openssl rand -hex 24) TF_VAR_master_secret=$(openssl rand -hex 32) \
#          TF_VAR_master_secret_salt=$(openssl rand -hex 32) TF_VAR_measurement_salt=$(openssl rand -hex 32)
# and keep them: the cluster's keys derive from the master secret and its salt.

variable "cluster" {
  type        = bool
  default     = false
  description = "Boot the VMs and initialise the cluster."
}

variable "vcpus" {
  type        = number
  default     = 2
  description = "Virtual CPUs per VM (1 on a machine with 2 CPUs and no KVM: TCG guests share the host's cores)."
}

variable "init_secret" {
  type      = string
  sensitive = true
  default   = null
}

variable "master_secret" {
  type      = string
  sensitive = true
  default   = null
}

variable "master_secret_salt" {
  type      = string
  sensitive = true
  default   = null
}

variable "measurement_salt" {
  type      = string
  sensitive = true
  default   = null
}

resource "constellation_qemu_infrastructure" "local" {
  count               = var.cluster ? 1 : 0
  name                = "local"
  image               = data.constellation_image.qemu.image
  control_plane_count = 1
  worker_count        = 1
  vcpus               = var.vcpus
  # 1 GiB (sparse): the node formats it with dm-integrity and wipes it whole at first boot, which
  # takes minutes per GiB under TCG.
  state_disk_size = 1
  init_secret     = var.init_secret
}

resource "constellation_cluster" "local" {
  count                              = var.cluster ? 1 : 0
  csp                                = "qemu"
  name                               = "local"
  uid                                = constellation_qemu_infrastructure.local[0].uid
  image                              = data.constellation_image.qemu.image
  attestation                        = data.constellation_attestation.qemu.attestation
  kubernetes_version                 = "v1.31.13"
  constellation_microservice_version = var.image_version
  init_secret                        = var.init_secret
  master_secret                      = var.master_secret
  master_secret_salt                 = var.master_secret_salt
  measurement_salt                   = var.measurement_salt
  out_of_cluster_endpoint            = constellation_qemu_infrastructure.local[0].out_of_cluster_endpoint
  in_cluster_endpoint                = constellation_qemu_infrastructure.local[0].in_cluster_endpoint
  api_server_cert_sans               = constellation_qemu_infrastructure.local[0].api_server_cert_sans
  network_config = {
    ip_cidr_node    = constellation_qemu_infrastructure.local[0].ip_cidr_node
    ip_cidr_service = "10.96.0.0/12"
  }
  # After Init, wait until every node (the worker once it joined) attests with PCR 15 = the cluster ID.
  # instance: a VM restarted by the infrastructure (a dead node at the next apply) changes `nodes`,
  # so the cluster checks that node again (it rejoins by itself) instead of keeping its last result
  nodes = [for n in constellation_qemu_infrastructure.local[0].nodes :
  { name = n.name, role = n.role, verification_endpoint = "${n.host_address}:30081", instance = tostring(n.qemu_pid) }]
  join_timeout = "30m" # TCG guests here take 8-15 min to boot
}

output "cluster_id" {
  value = var.cluster ? constellation_cluster.local[0].cluster_id : null
}

output "verification" {
  value = var.cluster ? constellation_cluster.local[0].verification : null
}

output "kubeconfig" {
  value     = var.cluster ? constellation_cluster.local[0].kubeconfig : null
  sensitive = true
}

output "nodes" {
  value = var.cluster ? constellation_qemu_infrastructure.local[0].nodes : null
}
