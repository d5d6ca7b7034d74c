#!/usr/bin/env bash
# rdiff benchmark: librsync's `rdiff --block-size=128 signature` + `delta` (what puavo-os runs)
# against mirrorbox's delta generator with the same block size, on two squashfs images of at
# least SIZE_MB (4 GiB: real Puavo images are 8-10 GB) built from real files, the second one
# with files changed, removed and added. Prints wall time, CPU time, peak RSS and delta size of
# both, their ratios, checks both deltas with the real `rdiff patch`, and compares with the
# targets:
#
#   wall time ........ mirrorbox at least 3x faster (median of the per-round ratios)
#   delta size ....... at most 1.0x rdiff's
#   peak RSS ......... below rdiff's (the larger of its two steps; the medians)
#
# The two tools run ROUNDS times, alternating (the order rotates every round), on the same
# images, both in the page cache; the judged figures are medians, never the best run.
#
# The images: the TREES are copied (real files: libraries, text, compressed data); if their
# squashfs would be smaller than SIZE_MB, incompressible blobs of 1-16 MiB (random bytes, as
# firmware, media and compressed payloads are to squashfs) are added until it is not. The new
# tree: every 7th Python file appended to, every 23rd shared library partly rewritten, every
# 5th .gz file removed, a folder renamed, a 30 MiB file added; every 10th blob partly
# rewritten, every 13th removed, and new blobs of 2 % of the image added.
#
# A benchmark, not a test. Usage: bash benches/rdiff.sh
# It needs about 3 x SIZE_MB of disk in TMPDIR plus a copy of the trees, and takes about half an
# hour at 4 GiB on 2 cores (two squashfs builds, then the rounds); the machine should be idle.
# Knobs (environment): SIZE_MB (smallest acceptable image, 4096), TREES (directories the images
# are built from; default: /usr/lib /usr/share), ROUNDS (5), BLOCK (128), KEEP_TMP (1 keeps the
# temp dir), SKIP_BUILD (1 uses the existing binary), MIRRORBOX_BIN.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
TREES=${TREES:-"/usr/lib /usr/share"}
SIZE_MB=${SIZE_MB:-${MIN_MB:-4096}}
ROUNDS=${ROUNDS:-5}
BLOCK=${BLOCK:-128}
((ROUNDS >= 1)) || { echo "ROUNDS must be at least 1" >&2; exit 1; }

need() { command -v "$1" >/dev/null 2>&1 || { [ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }; }
need rdiff rdiff
need mksquashfs squashfs-tools
need /usr/bin/time time

# shellcheck source=benches/lib.sh
source "$here/lib.sh"
mirrorbox_binary "$root"
bin=$MIRRORBOX_BIN

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mirrorbox-rdiff.XXXXXX")
cleanup() { [ "${KEEP_TMP:-0}" = 1 ] && echo "kept $tmp" || rm -rf "$tmp"; }
trap cleanup EXIT

echo "copying the trees ($TREES)..."
mkdir -p "$tmp/old"
for tree in $TREES; do
  cp -a "$tree" "$tmp/old/" 2>/dev/null || true
done
echo "building the old image..."
mksquashfs "$tmp/old" "$tmp/old.img" -noappend -quiet -no-progress >/dev/null
trees_mb=$(($(stat -c %s "$tmp/old.img") / 1048576))
blob_mb=0 blobs_note=""
if ((trees_mb < SIZE_MB)); then
  # Blobs of 1-16 MiB, sizes from a fixed sequence so runs are alike, appended to the image
  # (mksquashfs compresses only what it appends) and added to the tree the new image comes from.
  mkdir -p "$tmp/extra/blobs"
  n=0
  while ((trees_mb + blob_mb < SIZE_MB + 16)); do
    mb=$((1 + (n * 7) % 16))
    head -c "${mb}M" /dev/urandom >"$tmp/extra/blobs/blob-$n.bin"
    blob_mb=$((blob_mb + mb)) n=$((n + 1))
  done
  mksquashfs "$tmp/extra" "$tmp/old.img" -quiet -no-progress >/dev/null
  mv "$tmp/extra/blobs" "$tmp/old/blobs"
  echo "  the trees make $trees_mb MiB; appended $n blobs, $blob_mb MiB"
  blobs_note=" plus $blob_mb MiB of blobs"
fi
cp -a "$tmp/old" "$tmp/new"
# A realistic update: some files changed (appended to, rewritten), some removed, some added,
# a directory renamed (its contents move inside the image).
find "$tmp/new" -type f -name '*.py' | awk 'NR % 7 == 0' | while read -r f; do printf '# updated\n' >>"$f"; done
find "$tmp/new" -type f -name '*.so*' | awk 'NR % 23 == 0' | while read -r f; do head -c 4096 /dev/urandom | dd of="$f" bs=4096 seek=1 conv=notrunc status=none; done
find "$tmp/new" -type f -name '*.gz' | awk 'NR % 5 == 0' | xargs -r rm -f
mkdir -p "$tmp/new/added" && head -c 30M /dev/urandom >"$tmp/new/added/blob.bin"
first_dir=$(find "$tmp/new" -mindepth 2 -maxdepth 2 -type d -not -path '*/blobs' -print -quit)
[ -n "$first_dir" ] && mv "$first_dir" "${first_dir}-renamed"
if [ -d "$tmp/new/blobs" ]; then
  find "$tmp/new/blobs" -type f | sort | awk 'NR % 10 == 0' | while read -r f; do
    head -c 65536 /dev/urandom | dd of="$f" bs=65536 seek=3 conv=notrunc status=none
  done
  find "$tmp/new/blobs" -type f | sort | awk 'NR % 13 == 0' | xargs -r rm -f
  added=$((SIZE_MB / 50 + 1))
  head -c "${added}M" /dev/urandom >"$tmp/new/blobs/new-blob.bin"
fi

echo "building the new image..."
mksquashfs "$tmp/new" "$tmp/new.img" -noappend -quiet -no-progress >/dev/null
rm -rf "$tmp/old" "$tmp/new"
old_mb=$(($(stat -c %s "$tmp/old.img") / 1048576))
new_mb=$(($(stat -c %s "$tmp/new.img") / 1048576))
echo "images: old $old_mb MiB, new $new_mb MiB"
if [ "$old_mb" -lt "$SIZE_MB" ]; then
  echo "the old image is smaller than $SIZE_MB MiB" >&2
  exit 1
fi

measure() { # command... -> "wall cpu rss_kb"; a failed command stops the bench
  /usr/bin/time -o "$tmp/time.txt" -f '%e %U %S %M' "$@" >/dev/null 2>"$tmp/err.txt" ||
    { echo "failed: $* ($(tail -n 3 "$tmp/err.txt"))" >&2; kill -TERM $$; exit 1; }
  tail -n1 "$tmp/time.txt" | awk '{ printf "%s %.2f %s\n", $1, $2 + $3, $4 }'
}
calc() { awk "BEGIN { print $1 }"; }
median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
    print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

run_rdiff() {
  local sig_wall sig_cpu sig_rss del_wall del_cpu del_rss
  rm -f "$tmp/old.sig" "$tmp/rdiff.delta" # rdiff does not overwrite
  read -r sig_wall sig_cpu sig_rss < <(measure rdiff --block-size="$BLOCK" signature "$tmp/old.img" "$tmp/old.sig")
  read -r del_wall del_cpu del_rss < <(measure rdiff delta "$tmp/old.sig" "$tmp/new.img" "$tmp/rdiff.delta")
  r_wall=$(calc "$sig_wall + $del_wall") r_cpu=$(calc "$sig_cpu + $del_cpu")
  r_rss=$((sig_rss > del_rss ? sig_rss : del_rss))
  echo "  rdiff: $r_wall s wall ($sig_wall signature + $del_wall delta), $r_cpu s CPU, peak RSS $((r_rss / 1024)) MB (signature $((sig_rss / 1024)), delta $((del_rss / 1024)))"
}
run_mirrorbox() {
  rm -f "$tmp/mb.delta"
  read -r m_wall m_cpu m_rss < <(measure "$bin" -q rdiff --block-size "$BLOCK" "$tmp/old.img" "$tmp/new.img" "$tmp/mb.delta")
  echo "  mirrorbox: $m_wall s wall, $m_cpu s CPU, peak RSS $((m_rss / 1024)) MB"
}

cat "$tmp/old.img" "$tmp/new.img" >/dev/null # both in the page cache for both tools
speedups=() r_walls=() m_walls=() r_cpus=() m_cpus=() r_rsss=() m_rsss=()
for ((round = 1; round <= ROUNDS; round++)); do
  echo "round $round of $ROUNDS (block size $BLOCK)..."
  for who in $( ((round % 2)) && echo "rdiff mirrorbox" || echo "mirrorbox rdiff"); do
    if [ "$who" = rdiff ]; then run_rdiff; else run_mirrorbox; fi
  done
  speedups+=("$(calc "$r_wall / $m_wall")")
  r_walls+=("$r_wall") m_walls+=("$m_wall") r_cpus+=("$r_cpu") m_cpus+=("$m_cpu")
  r_rsss+=("$r_rss") m_rsss+=("$m_rss")
  if ((round == 1)); then
    echo "  checking both deltas with rdiff patch..."
    for delta in rdiff mb; do
      rm -f "$tmp/patched.img"
      rdiff patch "$tmp/old.img" "$tmp/$delta.delta" "$tmp/patched.img"
      cmp -s "$tmp/patched.img" "$tmp/new.img" || { echo "$delta delta does not rebuild the image" >&2; exit 1; }
    done
    rm -f "$tmp/patched.img"
    r_size=$(stat -c %s "$tmp/rdiff.delta") m_size=$(stat -c %s "$tmp/mb.delta")
  fi
  # The delta is deterministic: every round must write the same bytes.
  if ((round == 1)); then
    cp "$tmp/mb.delta" "$tmp/mb.delta.first"
  else
    cmp -s "$tmp/mb.delta" "$tmp/mb.delta.first" || { echo "mirrorbox's delta differs between rounds" >&2; exit 1; }
  fi
done

speedup=$(median "${speedups[@]}")
size_ratio=$(calc "$m_size / $r_size")
r_rss_med=$(median "${r_rsss[@]}") m_rss_med=$(median "${m_rsss[@]}")
verdict() { [ "$(awk "BEGIN { print ($1) ? 1 : 0 }")" = 1 ] && echo PASS || echo MISS; }

mkdir -p "$here/out"
report="$here/out/rdiff-$(date +%Y%m%d-%H%M%S).txt"
{
  echo "images: old $old_mb MiB, new $new_mb MiB (squashfs of $TREES$blobs_note, realistic changes); block size $BLOCK; $(nproc) cores; $ROUNDS alternating rounds"
  printf '%-22s %10s %10s %12s %14s\n' "median of $ROUNDS" "wall s" "cpu s" "peak RSS MB" "delta bytes"
  printf '%-22s %10s %10s %12s %14s\n' "rdiff sig+delta" "$(median "${r_walls[@]}")" "$(median "${r_cpus[@]}")" "$((${r_rss_med%.*} / 1024))" "$r_size"
  printf '%-22s %10s %10s %12s %14s\n' "mirrorbox rdiff" "$(median "${m_walls[@]}")" "$(median "${m_cpus[@]}")" "$((${m_rss_med%.*} / 1024))" "$m_size"
  echo "both deltas rebuild the new image with rdiff patch"
  echo "wall time: mirrorbox $(printf '%.2f' "$speedup")x faster, median of the rounds' ratios (target >= 3x): $(verdict "$speedup >= 3")"
  echo "  per round: ${speedups[*]}"
  echo "delta size: $(printf '%.4f' "$size_ratio")x rdiff's (target <= 1.0x): $(verdict "$size_ratio <= 1.0")"
  echo "peak RSS: $((${m_rss_med%.*} / 1024)) MB vs rdiff $((${r_rss_med%.*} / 1024)) MB (target: below): $(verdict "$m_rss_med < $r_rss_med")"
} | tee "$report"
echo "written to $report"
