#!/usr/bin/env bash
# rdiff benchmark: librsync's `rdiff --block-size=128 signature` + `delta` (what puavo-os runs)
# against mirrorbox's delta generator with the same block size, on two squashfs images of at
# least 1 GiB built from real files, the second one with files changed, removed and added.
# Prints wall time, CPU time, peak RSS and delta size of both, their ratios, checks both deltas
# with the real `rdiff patch`, and compares with the targets:
#
#   wall time ........ mirrorbox at least 3x faster
#   delta size ....... at most 1.05x rdiff's
#   peak RSS ......... no higher than rdiff's (the larger of its two steps)
#
# A benchmark, not a test. Usage: bash benches/rdiff.sh
# Knobs (environment): TREES (directories the images are built from; default: /usr/lib
# /usr/share), MIN_MB (smallest acceptable image, 1024), BLOCK (128), KEEP_TMP (1 keeps the
# temp dir), SKIP_BUILD (1 uses the existing binary), MIRRORBOX_BIN.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
TREES=${TREES:-"/usr/lib /usr/share"}
MIN_MB=${MIN_MB:-1024}
BLOCK=${BLOCK:-128}

need() { command -v "$1" >/dev/null 2>&1 || { [ "$(id -u)" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; }; }
need rdiff rdiff
need mksquashfs squashfs-tools
need /usr/bin/time time

# shellcheck source=benches/lib.sh
source "$here/lib.sh"
mirrorbox_binary "$root"
bin=$MIRRORBOX_BIN

tmp=$(mktemp -d /tmp/mirrorbox-rdiff.XXXXXX)
cleanup() { [ "${KEEP_TMP:-0}" = 1 ] && echo "kept $tmp" || rm -rf "$tmp"; }
trap cleanup EXIT

echo "copying the trees ($TREES)..."
mkdir -p "$tmp/old"
for tree in $TREES; do
  cp -a "$tree" "$tmp/old/" 2>/dev/null || true
done
cp -a "$tmp/old" "$tmp/new"
# A realistic update: some files changed (appended to, rewritten), some removed, some added,
# a directory renamed (its contents move inside the image).
find "$tmp/new" -type f -name '*.py' | awk 'NR % 7 == 0' | while read -r f; do printf '# updated\n' >> "$f"; done
find "$tmp/new" -type f -name '*.so*' | awk 'NR % 23 == 0' | while read -r f; do head -c 4096 /dev/urandom | dd of="$f" bs=4096 seek=1 conv=notrunc status=none; done
find "$tmp/new" -type f -name '*.gz' | awk 'NR % 5 == 0' | xargs -r rm -f
mkdir -p "$tmp/new/added" && head -c 30M /dev/urandom > "$tmp/new/added/blob.bin"
first_dir=$(find "$tmp/new" -mindepth 2 -maxdepth 2 -type d -print -quit)
[ -n "$first_dir" ] && mv "$first_dir" "${first_dir}-renamed"

echo "building squashfs images..."
mksquashfs "$tmp/old" "$tmp/old.img" -noappend -quiet -no-progress >/dev/null
mksquashfs "$tmp/new" "$tmp/new.img" -noappend -quiet -no-progress >/dev/null
rm -rf "$tmp/old" "$tmp/new"
old_mb=$(( $(stat -c %s "$tmp/old.img") / 1048576 ))
new_mb=$(( $(stat -c %s "$tmp/new.img") / 1048576 ))
echo "images: old $old_mb MiB, new $new_mb MiB"
if [ "$old_mb" -lt "$MIN_MB" ]; then
  echo "the old image is smaller than $MIN_MB MiB: add directories to TREES" >&2
  exit 1
fi
cat "$tmp/old.img" "$tmp/new.img" > /dev/null   # both in the page cache for both tools

measure() { # command... -> "wall cpu rss_kb"
  /usr/bin/time -o "$tmp/time.txt" -f '%e %U %S %M' "$@" >/dev/null 2>&1
  awk '{ printf "%s %.2f %s\n", $1, $2 + $3, $4 }' "$tmp/time.txt"
}

echo "rdiff signature + delta (block size $BLOCK)..."
read -r sig_wall sig_cpu sig_rss < <(measure rdiff --block-size="$BLOCK" signature "$tmp/old.img" "$tmp/old.sig")
read -r del_wall del_cpu del_rss < <(measure rdiff delta "$tmp/old.sig" "$tmp/new.img" "$tmp/rdiff.delta")
echo "mirrorbox rdiff (block size $BLOCK)..."
read -r mb_wall mb_cpu mb_rss < <(measure "$bin" -q rdiff --block-size "$BLOCK" "$tmp/old.img" "$tmp/new.img" "$tmp/mb.delta")

echo "checking both deltas with rdiff patch..."
for delta in rdiff mb; do
  rm -f "$tmp/patched.img"
  rdiff patch "$tmp/old.img" "$tmp/$delta.delta" "$tmp/patched.img"
  cmp -s "$tmp/patched.img" "$tmp/new.img" || { echo "$delta delta does not rebuild the image" >&2; exit 1; }
done

r_wall=$(echo "$sig_wall + $del_wall" | bc -l)
r_cpu=$(echo "$sig_cpu + $del_cpu" | bc -l)
r_rss=$(( sig_rss > del_rss ? sig_rss : del_rss ))
r_size=$(stat -c %s "$tmp/rdiff.delta")
m_size=$(stat -c %s "$tmp/mb.delta")
ratio() { echo "scale=2; $1 / $2" | bc -l; }
speedup=$(ratio "$r_wall" "$mb_wall")
size_ratio=$(ratio "$m_size" "$r_size")
verdict() { [ "$(echo "$1" | bc -l)" = 1 ] && echo PASS || echo MISS; }

mkdir -p "$here/out"
report="$here/out/rdiff-$(date +%Y%m%d-%H%M%S).txt"
{
  echo "images: old $old_mb MiB, new $new_mb MiB (squashfs of $TREES, realistic changes); block size $BLOCK; $(nproc) cores"
  printf '%-22s %10s %10s %12s %14s\n' tool "wall s" "cpu s" "peak RSS MB" "delta bytes"
  printf '%-22s %10s %10s %12s %14s\n' "rdiff sig+delta" "$r_wall" "$r_cpu" "$((r_rss / 1024))" "$r_size"
  printf '%-22s %10s %10s %12s %14s\n' "  (signature)" "$sig_wall" "$sig_cpu" "$((sig_rss / 1024))" "-"
  printf '%-22s %10s %10s %12s %14s\n' "  (delta)" "$del_wall" "$del_cpu" "$((del_rss / 1024))" "-"
  printf '%-22s %10s %10s %12s %14s\n' "mirrorbox rdiff" "$mb_wall" "$mb_cpu" "$((mb_rss / 1024))" "$m_size"
  echo "both deltas rebuild the new image with rdiff patch"
  echo "wall time: mirrorbox ${speedup}x faster (target >= 3x): $(verdict "$speedup >= 3")"
  echo "delta size: ${size_ratio}x rdiff's (target <= 1.05x): $(verdict "$size_ratio <= 1.05")"
  echo "peak RSS: $((mb_rss / 1024)) MB vs rdiff $((r_rss / 1024)) MB (target: no higher): $(verdict "$mb_rss <= $r_rss")"
} | tee "$report"
echo "written to $report"
