#!/usr/bin/env bash
# Cold ingest of small local files: `mirrorbox sync` of a fresh data dir from a tree of N small
# files (benches/gen_tree.py: 32-256 bytes each, laid out like an apt pool), with
# `[store] fsync = true, ingest = "copy"`, in files per second. Two binaries can be compared in
# the same conditions: their runs alternate (the order rotates every round) and each gets the
# median of ROUNDS runs, never the best one.
#
#   bash benches/ingest.sh                                  # this repo's release build
#   OTHER_BIN=/path/to/older/mirrorbox bash benches/ingest.sh
#
# Knobs (environment): N (files, 100000), ROUNDS (5), MIRRORBOX_BIN (default: this repo's
# release build, built unless SKIP_BUILD=1), OTHER_BIN (a second binary to compare), FSYNC
# (true), INGEST (copy), STRACE (1 = one more run of each binary under `strace -c -f`, to
# print its system calls per file), KEEP_TMP (1 = keep the temp dir).
#
# Every data dir of a run is kept until the end: removing a tree of many files just before the
# next run slows the next run's inode allocation on some filesystems (ext4 without a journal
# skips recently freed inodes one by one), which would favour whichever binary runs first.
# About 4 KB of disk per file per run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
N=${N:-100000}
ROUNDS=${ROUNDS:-5}
FSYNC=${FSYNC:-true}
INGEST=${INGEST:-copy}

# shellcheck source=benches/lib.sh
source "$here/lib.sh"
mirrorbox_binary "$root"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mirrorbox-ingest.XXXXXX")
cleanup() {
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

labels=(this)
bins=("$MIRRORBOX_BIN")
if [ -n "${OTHER_BIN:-}" ]; then
  labels+=(other)
  bins+=("$OTHER_BIN")
fi

echo "generating $N files..."
python3 "$here/gen_tree.py" "$tmp/tree" "$N" >/dev/null
files=$(find "$tmp/tree" -type f | wc -l)
sync

# config NAME: a data dir of its own with one `dir` source over the tree.
config() {
  cat >"$tmp/$1.toml" <<EOF
data_dir = "$tmp/data-$1"
[store]
fsync = $FSYNC
ingest = "$INGEST"
[[source]]
id = "site"
kind = "dir"
mount = "/files"
path = "$tmp/tree"
EOF
}

# run LABEL BIN ROUND: one cold sync; prints files/s.
run() {
  config "$1-$3"
  /usr/bin/time -f '%e' -o "$tmp/time" "$2" -q sync --config "$tmp/$1-$3.toml" site >/dev/null
  awk -v n="$files" -v s="$(cat "$tmp/time")" 'BEGIN { printf "%.0f", n / s }'
}

declare -A rates
for ((round = 0; round < ROUNDS; round++)); do
  line="round $((round + 1)):"
  for ((k = 0; k < ${#bins[@]}; k++)); do
    i=$(((k + round) % ${#bins[@]}))
    rate=$(run "${labels[i]}" "${bins[i]}" "$round")
    rates[${labels[i]}]+="$rate "
    line+=" ${labels[i]} $rate files/s"
  done
  echo "$line"
done

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
for label in "${labels[@]}"; do
  # shellcheck disable=SC2086
  echo "$label: median $(median ${rates[$label]}) files/s over $ROUNDS cold syncs of $files files (fsync = $FSYNC, ingest = $INGEST)"
done

if [ "${STRACE:-0}" = 1 ]; then
  for ((i = 0; i < ${#bins[@]}; i++)); do
    config "${labels[i]}-strace"
    strace -c -f -o "$tmp/strace" "${bins[i]}" -q sync --config "$tmp/${labels[i]}-strace.toml" site >/dev/null
    echo "${labels[i]}: system calls per file"
    awk -v n="$files" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $4 >= n / 10 { printf "  %-12s %5.2f\n", $NF, $4 / n }' "$tmp/strace"
    awk -v n="$files" '$NF == "total" { printf "  %-12s %5.2f\n", "total", $3 / n }' "$tmp/strace"
  done
fi
