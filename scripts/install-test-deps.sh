#!/usr/bin/env bash
# Installs what the tests need on a clean Debian/Ubuntu machine (run as root), then `npm ci`.
# Idempotent: packages already present are not touched, node_modules is reused when it matches.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# command -> Debian package
declare -A NEED=(
  [nfs-ls]=libnfs-utils
  [nfs-cp]=libnfs-utils
  [nfs-cat]=libnfs-utils
  [tshark]=tshark
  [rpcinfo]=rpcbind
  [showmount]=nfs-common
  [strace]=strace
)
missing=()
for cmd in "${!NEED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEED[$cmd]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-test-deps: need root to install: ${missing[*]}" >&2
    exit 1
  fi
  echo "install-test-deps: installing ${missing[*]}"
  # tshark asks whether non-root users may capture; answer no without a prompt
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections 2>/dev/null || true
  export DEBIAN_FRONTEND=noninteractive
  # rpcbind and nfs-common are wanted for their tools (rpcinfo, showmount) only: keep their
  # maintainer scripts from starting an rpcbind daemon on the machine's port 111
  policy=/usr/sbin/policy-rc.d
  had_policy=0; [ -e "$policy" ] && had_policy=1
  if [ "$had_policy" -eq 0 ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; fi
  apt-get update -qq
  apt_status=0
  apt-get install -y --no-install-recommends "${missing[@]}" >/dev/null || apt_status=$?
  if [ "$had_policy" -eq 0 ]; then rm -f "$policy"; fi
  [ "$apt_status" -eq 0 ] || exit "$apt_status"
fi

# node dependencies: npm ci unless node_modules already matches the lockfile
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
