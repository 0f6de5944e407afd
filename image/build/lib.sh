# shellcheck shell=bash
# Shared helpers of the image build scripts (sourced, not run).
# Progress goes to stderr as "[image-build  12s] step: detail" so a long build shows where it is.

CT_T0=${CT_T0:-$(date +%s)}
export CT_T0

ct_log() {
	printf '[image-build %4ds] %s\n' "$(($(date +%s) - CT_T0))" "$*" >&2
}

ct_die() {
	printf '[image-build %4ds] ERROR: %s\n' "$(($(date +%s) - CT_T0))" "$*" >&2
	exit 1
}

ct_need() {
	local t
	for t in "$@"; do
		command -v "$t" >/dev/null 2>&1 || ct_die "missing host tool '$t' (run scripts/setup.sh)"
	done
}

# ct_uuid_from SEED LABEL: a stable UUID (RFC 4122 layout, version 4 bits set) derived from a
# seed, so that every identifier in the image is a function of its inputs (reproducible builds).
ct_uuid_from() {
	local h
	h=$(printf '%s\0%s' "$1" "$2" | sha256sum | cut -c1-32)
	# set version (4) and variant (10xx) like systemd-repart's derived UUIDs
	h="${h:0:12}4${h:13:3}$(printf '%x' $(( (0x${h:16:1} & 0x3) | 0x8 )))${h:17:15}"
	printf '%s-%s-%s-%s-%s\n' "${h:0:8}" "${h:8:4}" "${h:12:4}" "${h:16:4}" "${h:20:12}"
}

# ct_hex_to_uuid HEX32: 32 hex digits as a UUID string without reordering (systemd's id128
# format; the verity generator expects the root hash halves in this form).
ct_hex_to_uuid() {
	local h=$1
	printf '%s-%s-%s-%s-%s\n' "${h:0:8}" "${h:8:4}" "${h:12:4}" "${h:16:4}" "${h:20:12}"
}

# ct_file_size FILE
ct_file_size() {
	stat -c %s "$1"
}
