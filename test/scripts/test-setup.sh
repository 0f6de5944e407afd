#!/bin/bash
# test-setup: scripts/setup.sh checks for Terraform >= 1.11 before anything else (it is not a
# Debian package) and says where to get it: missing, too old, unreadable and good versions,
# with stand-in `terraform` programs on PATH. `--check` installs nothing.
set -euo pipefail
src=${CT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
setup="$src/scripts/setup.sh"
fail() { echo "test-setup: FAIL: $*" >&2; exit 1; }
ok() { echo "test-setup: ok: $*" >&2; }
work=$(mktemp -d "${TMPDIR:-/tmp}/ct-setup.XXXXXX")
trap 'rm -rf "$work"' EXIT

# PATH without any terraform: the system directories only, minus /usr/local/bin
base=/usr/sbin:/usr/bin:/sbin:/bin
! PATH=$base command -v terraform >/dev/null || fail "a terraform in $base: cannot test its absence"
fake() { # VERSION-LINE -> a dir with a terraform that prints it
	mkdir -p "$work/$1"
	printf '#!/bin/sh\necho "%s"\necho "on linux_amd64"\n' "$2" > "$work/$1/terraform"
	chmod +x "$work/$1/terraform"
	echo "$work/$1"
}
expect() { # WHAT RC PATTERN PATH
	local rc=0
	PATH=$4 bash "$setup" --check > "$work/out" 2>&1 || rc=$?
	[ "$rc" = "$2" ] || fail "$1: exit $rc, expected $2: $(cat "$work/out")"
	grep -q -- "$3" "$work/out" || fail "$1: output lacks '$3': $(cat "$work/out")"
	ok "$1: $(head -n 1 "$work/out" | cut -c1-160)"
}
url=https://developer.hashicorp.com/terraform/install
expect "no terraform" 1 "terraform is not installed; it is not a Debian package: install it from $url.*1.11.4 is the version tested" "$base"
expect "terraform 1.10.5" 1 "is Terraform 1.10.5, older than 1.11: install it from $url" "$(fake old 'Terraform v1.10.5'):$base"
expect "terraform 0.15.0" 1 "is Terraform 0.15.0, older than 1.11" "$(fake older 'Terraform v0.15.0'):$base"
expect "unreadable version" 1 "cannot read the version of .*said: OpenTofu v1.8.0.*$url" "$(fake tofu 'OpenTofu v1.8.0'):$base"
# a good version passes the Terraform check (the package list is checked next: --check fails
# only if packages are missing, which the message names)
rc=0
PATH="$(fake good 'Terraform v1.11.4'):$base" bash "$setup" --check > "$work/out" 2>&1 || rc=$?
if [ "$rc" = 0 ]; then grep -q "^setup: terraform 1.11.4; all [0-9]* packages present" "$work/out" || fail "good terraform: $(cat "$work/out")"
else grep -q "packages missing" "$work/out" || fail "good terraform refused: $(cat "$work/out")"; fi
ok "terraform 1.11.4 accepted: $(head -n 1 "$work/out" | cut -c1-120)"
rc=0
PATH="$(fake newer 'Terraform v1.12.0'):$base" bash "$setup" --check > "$work/out" 2>&1 || rc=$?
! grep -q "terraform" <(grep FAIL "$work/out") || fail "terraform 1.12.0 refused: $(cat "$work/out")"
ok "terraform 1.12.0 accepted"
rc=0
bash "$setup" --bogus > "$work/out" 2>&1 || rc=$?
[ "$rc" = 2 ] && grep -q "unknown argument '--bogus'" "$work/out" || fail "unknown argument: exit $rc: $(cat "$work/out")"
ok "unknown argument refused"
echo "test-setup: PASS" >&2
