# Constellation's examples/full/aws configuration for this provider. The IAM and infrastructure
# modules (downloaded from GitHub in Constellation's example) are replaced by variables, and the
# secrets come from variables instead of the random provider, because neither registry nor GitHub
# is reachable here. The resources and their attributes are unchanged.
terraform {
  required_providers {
    constellation = { source = "edgelesssys/constellation" }
  }
}

variable "constellation_version" {
  type    = string
  default = "v2.25.0"
}
variable "kubernetes_version" {
  type    = string
  default = "v1.31.13"
}
variable "uid" { type = string }
variable "out_of_cluster_endpoint" { type = string }
variable "in_cluster_endpoint" { type = string }
variable "ip_cidr_node" {
  type    = string
  default = "192.168.176.0/20"
}
variable "ip_cidr_pod" {
  type    = string
  default = "10.10.0.0/16"
}
variable "init_secret" {
  type      = string
  sensitive = true
}
variable "master_secret" {
  type      = string
  sensitive = true
}
variable "master_secret_salt" {
  type      = string
  sensitive = true
}
variable "measurement_salt" {
  type      = string
  sensitive = true
}
variable "attestation" {
  description = "Output of the constellation_attestation data source (or an equivalent object)."
  type = object({
    variant            = string
    bootloader_version = number
    tee_version        = number
    snp_version        = number
    microcode_version  = number
    amd_root_key       = string
    measurements       = map(object({ expected = string, warn_only = bool }))
  })
}
variable "region" {
  type    = string
  default = "eu-central-1"
}

data "constellation_image" "bar" {
  version             = var.constellation_version
  attestation_variant = "aws-sev-snp"
  csp                 = "aws"
  region              = var.region
}

resource "constellation_cluster" "aws" {
  csp                                = "aws"
  name                               = "aws-tf"
  uid                                = var.uid
  image                              = data.constellation_image.bar.image
  attestation                        = var.attestation
  kubernetes_version                 = var.kubernetes_version
  constellation_microservice_version = var.constellation_version
  init_secret                        = var.init_secret
  master_secret                      = var.master_secret
  master_secret_salt                 = var.master_secret_salt
  measurement_salt                   = var.measurement_salt
  out_of_cluster_endpoint            = var.out_of_cluster_endpoint
  in_cluster_endpoint                = var.in_cluster_endpoint
  network_config = {
    ip_cidr_node    = var.ip_cidr_node
    ip_cidr_pod     = var.ip_cidr_pod
    ip_cidr_service = "10.96.0.0/12"
  }

}
