#!/bin/bash
# lockdown-tree.sh [--check] TREE
#
# A confidential node offers no interactive login and no shell on any console: the serial
# console belongs to the infrastructure (cloud provider, hypervisor), and whoever holds it must
# not get a prompt on a node that holds cluster keys. Without --check, masks in TREE (an OS tree,
# run on the build host by mkosi/mkosi.finalize; idempotent):
#   getty@.service, serial-getty@.service, console-getty.service, container-getty@.service,
#   autovt@.service, getty.target      no getty (systemd-getty-generator would add
#                                      serial-getty@ttyS0 for console=ttyS0; it is masked too)
#   emergency.service/.target, rescue.service/.target, debug-shell.service
#                                      no emergency, rescue or debug shell on the root
# The initrd keeps dracut's emergency.service, which honours rd.shell=0 and rd.emergency=reboot
# on the command line (no shell, reboot); its rescue and debug-shell units are masked through
# the dracut configuration (mkosi.skeleton/etc/dracut.conf.d/50-constellation.conf).
# systemd-ask-password-console stays: it asks for a passphrase, it gives no shell.
# A debug image that keeps a console must be its own variant with its own measurements.
#
# With --check, changes nothing and fails, naming each unit, unless every mask above is in place
# and no getty is enabled (image/build/build-image.sh refuses such a tree).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

check=0
[ "${1:-}" != --check ] || { check=1; shift; }
tree=${1:?usage: lockdown-tree.sh [--check] TREE}
[ -d "$tree/etc" ] || ct_die "lockdown: $tree has no /etc (not an OS tree?)"

units="getty@.service serial-getty@.service console-getty.service container-getty@.service autovt@.service getty.target
emergency.service emergency.target rescue.service rescue.target debug-shell.service"
generator=systemd-getty-generator

if [ "$check" = 0 ]; then
	mkdir -p "$tree/etc/systemd/system" "$tree/etc/systemd/system-generators"
	for u in $units; do
		ln -sfn /dev/null "$tree/etc/systemd/system/$u"
	done
	ln -sfn /dev/null "$tree/etc/systemd/system-generators/$generator"
	# systemd's package enables getty@tty1 (getty.target.wants); drop such links.
	rm -rf "$tree/etc/systemd/system/getty.target.wants"
fi

bad=()
for u in $units; do
	[ "$(readlink "$tree/etc/systemd/system/$u" 2>/dev/null)" = /dev/null ] || bad+=("$u not masked")
done
[ "$(readlink "$tree/etc/systemd/system-generators/$generator" 2>/dev/null)" = /dev/null ] \
	|| bad+=("$generator not masked (it enables serial-getty@ttyS0 for console=ttyS0)")
while IFS= read -r l; do
	bad+=("${l#"$tree"} enabled")
done < <(find "$tree/etc/systemd/system" -path '*.wants/*' \( -name '*getty*' -o -name 'autovt@*' \
	-o -name 'debug-shell*' \) 2>/dev/null)
if [ "${#bad[@]}" -gt 0 ]; then
	ct_die "lockdown: $tree offers a console login or shell: $(IFS=';'; echo "${bad[*]}" | sed 's/;/; /g') (run image/build/lockdown-tree.sh on it)"
fi
[ "$check" = 1 ] || ct_log "lockdown: gettys, emergency, rescue and debug shells masked in $tree"
