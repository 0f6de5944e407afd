#!/bin/bash
# install-node.sh TREE DIR...: installs built node programs into an OS tree before the initrd
# and the root file system are made from it (image/build/build-image.sh --node-dir DIR).
#
# DIR is an installed tree, e.g. `cmake --install build/x --prefix DIR/usr` (or DESTDIR=DIR with
# --prefix /usr), or a directory staged the same way: only DIR/usr and DIR/etc are allowed (/var
# and /tmp are tmpfs at boot, everything else is not part of the image layout):
#   usr/bin/<program>, usr/libexec/..., usr/lib/systemd/system/<unit>   (node/<program>/*.service)
#   etc/dracut.conf.d/NN-<program>.conf   to put a program into the initrd too (install_items+=...)
# Then:
#   - every unit with an [Install] section is enabled (systemctl --root=TREE enable);
#   - every ELF file's NEEDED libraries must be in TREE (or in DIR): a missing runtime library is
#     named at build time with the package list to add it to (mkosi/mkosi.conf), not at boot;
#   - setuid/setgid files, device nodes and symlinks leaving the tree are refused.
# Files are copied owned by root with their modes (times are fixed later by the root file system).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

tree=${1:?usage: install-node.sh TREE DIR...}
shift
[ $# -gt 0 ] || ct_die "usage: install-node.sh TREE DIR..."
[ -d "$tree/usr" ] || ct_die "node: $tree has no /usr (not an OS tree?)"
ct_need objdump systemctl

for dir in "$@"; do
	[ -d "$dir" ] || ct_die "node: '$dir' is not a directory"
	while IFS= read -r -d '' e; do
		n=${e#"$dir"/}
		case "$n" in
		usr|etc) ;;
		*) ct_die "node: $dir/$n: only usr/ and etc/ can be installed into the image (/var and /tmp are tmpfs at boot)" ;;
		esac
	done < <(find "$dir" -mindepth 1 -maxdepth 1 -print0)
	bad=$(find "$dir" -perm /6000 -type f | head -n 1)
	[ -z "$bad" ] || ct_die "node: $bad is setuid/setgid; node programs run as services, not setuid"
	bad=$(find "$dir" \( -type b -o -type c -o -type p -o -type s \) | head -n 1)
	[ -z "$bad" ] || ct_die "node: $bad is a device, FIFO or socket; not installable"
	while IFS= read -r -d '' l; do
		t=$(readlink "$l")
		case "$t" in
		/*) ;; # absolute: resolved in the image
		*)
			r=$(realpath -m "$(dirname "$l")/$t") base=$(realpath -m "$dir")
			case "$r" in "$base"/*) t=${r#"$base"} ;; *) t="(outside $dir)" ;; esac
			;;
		esac
		case "$t" in
		/usr/*|/etc/*|/dev/null) ;;
		*) ct_die "node: symlink $l points to '$(readlink "$l")', outside /usr and /etc" ;;
		esac
	done < <(find "$dir" -type l -print0)
done

for dir in "$@"; do
	for top in usr etc; do
		[ -d "$dir/$top" ] || continue
		# --remove-destination: never write through a symlink that is already in the tree
		cp -a --no-preserve=ownership --remove-destination "$dir/$top" "$tree/"
	done
	ct_log "node: installed $(find "$dir" -type f | wc -l) files from $dir"
done

# Every ELF's NEEDED libraries must resolve in the image (the image's library path, or a library
# the node directories install themselves).
libdirs=(usr/lib/x86_64-linux-gnu lib/x86_64-linux-gnu usr/lib lib usr/lib64 lib64)
missing=()
for dir in "$@"; do
	while IFS= read -r -d '' f; do
		[ "$(head -c 4 "$f" | od -An -c | tr -d ' ')" = '177ELF' ] || continue
		while read -r lib; do
			found=0
			for d in "${libdirs[@]}"; do
				[ -e "$tree/$d/$lib" ] && { found=1; break; }
			done
			[ "$found" = 1 ] || missing+=("$lib (needed by /${f#"$dir"/})")
		done < <(objdump -p "$f" 2>/dev/null | awk '$1 == "NEEDED" { print $2 }')
	done < <(find "$dir" -type f -print0)
done
if [ "${#missing[@]}" -gt 0 ]; then
	ct_die "node: libraries not in the image: $(printf '%s; ' "${missing[@]}")add their Debian packages to mkosi/mkosi.conf (Packages=)"
fi

# Enable the units that say how ([Install]); others are started by whatever wants them.
units=()
for dir in "$@"; do
	for ud in usr/lib/systemd/system etc/systemd/system; do
		[ -d "$dir/$ud" ] || continue
		while IFS= read -r -d '' u; do
			grep -q '^\[Install\]' "$u" && units+=("$(basename "$u")")
		done < <(find "$dir/$ud" -maxdepth 1 -type f \( -name '*.service' -o -name '*.socket' -o -name '*.timer' -o -name '*.path' -o -name '*.target' \) -print0)
	done
done
if [ "${#units[@]}" -gt 0 ]; then
	systemctl --root="$tree" --quiet enable "${units[@]}" || ct_die "node: systemctl enable ${units[*]} failed in $tree"
	ct_log "node: enabled ${units[*]}"
fi
