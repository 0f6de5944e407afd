# A local release: images and measurements read from a directory in Constellation's CDN layout
# (written by examples/run-example.sh, or by `constellation-image publish`).
terraform {
  required_providers {
    constellation = { source = "edgelesssys/constellation" }
  }
}

variable "release_dir" {
  type        = string
  description = "Absolute path of the local release directory."
}

variable "image_version" {
  type    = string
  default = "v2.25.0"
}

provider "constellation" {
  cdn_url = "file://${var.release_dir}"
}

data "constellation_image" "qemu" {
  version             = var.image_version
  csp                 = "qemu"
  attestation_variant = "qemu-vtpm"
}

output "image" {
  value = data.constellation_image.qemu.image
}
