#!/usr/bin/env bash
# Installs every Debian 12 package the project needs to build, test, build images and run the
# local tooling. Idempotent: runs `apt-get update` once per invocation and installs only what is
# missing. See ARCHITECTURE.md §Dependencies for why each package is here.
#
# Terraform is the one prerequisite it cannot install (HashiCorp does not publish it in Debian):
# it checks for `terraform` >= 1.11 first and stops with where to get it.
#
# --check: install nothing; fail (listing them) if Terraform or a package is missing.
set -euo pipefail

check_only=0
case "${1:-}" in
  "") ;;
  --check) check_only=1 ;;
  *) echo "setup: unknown argument '$1' (usage: setup.sh [--check])" >&2; exit 2 ;;
esac

# Terraform: the version the tests and examples run against is 1.11.4.
tf_min_major=1 tf_min_minor=11 tf_tested=1.11.4
tf_get="install it from https://developer.hashicorp.com/terraform/install (>= $tf_min_major.$tf_min_minor; $tf_tested is the version tested), put it on PATH, then run this again"
if ! command -v terraform >/dev/null 2>&1; then
  echo "setup: FAIL: terraform is not installed; it is not a Debian package: $tf_get" >&2
  exit 1
fi
tf_version=$(terraform version 2>/dev/null | sed -n '1s/^Terraform v\([0-9][0-9.]*\).*/\1/p')
if ! [[ "$tf_version" =~ ^([0-9]+)\.([0-9]+)(\.[0-9]+)?$ ]]; then
  echo "setup: FAIL: cannot read the version of $(command -v terraform) ('terraform version' said: $(terraform version 2>&1 | head -n 1)); $tf_get" >&2
  exit 1
fi
if [ "${BASH_REMATCH[1]}" -lt "$tf_min_major" ] \
   || { [ "${BASH_REMATCH[1]}" -eq "$tf_min_major" ] && [ "${BASH_REMATCH[2]}" -lt "$tf_min_minor" ]; }; then
  echo "setup: FAIL: $(command -v terraform) is Terraform $tf_version, older than $tf_min_major.$tf_min_minor: $tf_get" >&2
  exit 1
fi

packages=(
  # toolchain
  build-essential pkg-config cmake clang libclang-rt-14-dev git
  # libraries chosen for the project
  libgrpc-dev protobuf-c-compiler libprotobuf-c-dev libprotobuf-dev
  libssl-dev libcurl4-openssl-dev libjansson-dev libmsgpack-dev libcmocka-dev
  libcryptsetup-dev cryptsetup-bin libcrypt-dev libarchive-dev libmicrohttpd-dev
  libtss2-dev libtss2-tcti-swtpm0 libtss2-tcti-device0
  # real peers the tests run against
  swtpm swtpm-tools tpm2-tools openssl python3 python3-pykmip python3-grpcio python3-protobuf curl jq xxd osslsigncode strace
  etcd-server
  # image build and boot
  qemu-system-x86 ovmf debootstrap systemd-container systemd-boot systemd-boot-efi sbsigntool
  dosfstools mtools fdisk e2fsprogs cpio binutils zstd squashfs-tools
  mkosi python3-cryptography
  # benchmarks: bench/provider (plan-timeline.sh, terraform-profile.sh and gen-hot-text.sh use perf;
  # plan-cpu.sh and bench-ab.sh GNU time; gen-hot-text.sh valgrind)
  linux-perf time valgrind
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done

if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup: terraform $tf_version; all ${#packages[@]} packages present"
  exit 0
fi
if [ "$check_only" = 1 ]; then
  echo "setup: FAIL: ${#missing[@]} packages missing: ${missing[*]} (run scripts/setup.sh)" >&2
  exit 1
fi

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
echo "setup: installing ${#missing[@]} packages: ${missing[*]}"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
