#!/usr/bin/env bash
# The test command (see README.md): installs what the tests need if it is missing, then runs
# every test. Real clients only: curl, wget, Python's REDbot; nothing is mocked.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in curl wget openssl; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
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

# REDbot, the HTTP linter, in a private virtual environment.
venv=target/pyenv
if ! "$venv/bin/python" -c 'import redbot' >/dev/null 2>&1; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check redbot
fi
export MIRRORBOX_PYTHON="$PWD/$venv/bin/python"

cargo test --all-targets "$@"
