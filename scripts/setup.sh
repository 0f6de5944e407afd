#!/usr/bin/env bash
# Installs every Debian 12 package the project needs to build, test, build images and run the
# local tooling. Idempotent: runs `apt-get update` once per invocation and installs only what is
# missing. See ARCHITECTURE.md §Dependencies for why each package is here.
set -euo pipefail

packages=(
  # toolchain
  build-essential pkg-config cmake clang libclang-rt-14-dev git
  # libraries chosen for the project
  libgrpc-dev protobuf-c-compiler libprotobuf-c-dev libprotobuf-dev
  libssl-dev libcurl4-openssl-dev libjansson-dev libmsgpack-dev libcmocka-dev
  libcryptsetup-dev cryptsetup-bin libcrypt-dev libarchive-dev libmicrohttpd-dev
  libtss2-dev libtss2-tcti-swtpm0 libtss2-tcti-device0
  # real peers the tests run against
  swtpm swtpm-tools tpm2-tools openssl python3 python3-pykmip python3-grpcio python3-protobuf curl jq xxd osslsigncode
  # image build and boot
  qemu-system-x86 ovmf debootstrap systemd-container systemd-boot systemd-boot-efi sbsigntool
  dosfstools mtools fdisk e2fsprogs cpio binutils zstd squashfs-tools
  mkosi python3-cryptography
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "setup: installing ${#missing[@]} packages: ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
