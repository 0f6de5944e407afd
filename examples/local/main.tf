# A local release: the node image and its signed measurements read from a directory in
# Constellation's CDN layout, written by `constellation-image publish` (examples/run-example.sh
# does that for you).
terraform {
  required_providers {
    constellation = { source = "edgelesssys/constellation" }
  }
}

variable "release_dir" {
  type        = string
  description = "Absolute path of the local release directory."
}

variable "cosign_public_key" {
  type        = string
  description = "Path of the PEM public key that signed the release's measurements."
}

variable "image_version" {
  type    = string
  default = "v2.25.0"
}

provider "constellation" {
  cdn_url           = "file://${var.release_dir}"
  cosign_public_key = file(var.cosign_public_key)
}

data "constellation_image" "qemu" {
  version             = var.image_version
  csp                 = "qemu"
  attestation_variant = "qemu-vtpm"
}

data "constellation_attestation" "qemu" {
  csp                 = "qemu"
  attestation_variant = "qemu-vtpm"
  image               = data.constellation_image.qemu.image
  # A locally signed release is not in a transparency log (and no log is reachable offline):
  # accept signed-but-unlogged measurements, with a warning.
  skip_rekor = true
}

output "image" {
  value = data.constellation_image.qemu.image
}

output "measurements" {
  value = data.constellation_attestation.qemu.attestation.measurements
}
