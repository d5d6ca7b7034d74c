#!/usr/bin/env bash
# The test command (see README.md): installs what the tests need if it is missing, then runs
# every test. Real clients only: curl, wget, aria2c, mktorrent, Ruby, apt-get, gpg, Python's REDbot,
# and a real ACME server (pebble); nothing is mocked.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
declare -A package_of=([curl]=curl [wget]=wget [openssl]=openssl [gpg]=gpg [xz]=xz-utils
  [apt-ftparchive]=apt-utils [dpkg-deb]=dpkg [dpkg-source]=dpkg-dev [script]=bsdutils [rdiff]=rdiff [mksquashfs]=squashfs-tools
  [jq]=jq [aria2c]=aria2 [mktorrent]=mktorrent [ruby]=ruby [gzip]=gzip [bzip2]=bzip2 [zstd]=zstd [lz4]=lz4 [systemd-analyze]=systemd [chromium]=chromium [ss]=iproute2
  [pebble]=pebble [pebble-challtestsrv]=pebble)
for tool in "${!package_of[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${package_of[$tool]}")
done
[ -f /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
# nginx lives in /usr/sbin, outside a normal user's PATH.
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)
# Chromium renders the status page; without fonts its screenshot is empty boxes.
fc-list 2>/dev/null | grep -qi liberation || missing+=(fonts-liberation)
if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  missing+=(python3 python3-venv)
fi
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "the tests need: ${missing[*]} (install them, e.g. with apt-get)" >&2
    exit 1
  fi
fi

# The signature test reads the InRelease files apt keeps after `apt-get update`.
if ! ls /var/lib/apt/lists/*_InRelease >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq
  else
    echo "the tests need apt's lists: run 'apt-get update' as root once" >&2
    exit 1
  fi
fi

# REDbot (the HTTP linter), the Prometheus text parser, h2 (raw HTTP/2 frames) and sslyze (the
# TLS profile check), in a private virtual environment.
venv=target/pyenv
if ! "$venv/bin/python" -c 'import redbot, prometheus_client, h2, sslyze' >/dev/null 2>&1; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check redbot prometheus-client h2 sslyze
fi
export MIRRORBOX_PYTHON="$PWD/$venv/bin/python"

cargo test --no-fail-fast --all-targets "$@"
