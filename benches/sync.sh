#!/usr/bin/env bash
# apt sync benchmark: mirrorbox against aptly, apt-mirror and debmirror (Debian's packages), in
# one run, against the same generated upstream served by nginx on 127.0.0.1:
#
#   cold sync behind the added delay ............ >= 2x faster than the fastest peer
#   no-op sync (behind the delay) ............... < 100 ms
#   peak RSS of mirrorbox ....................... independent of the largest package's size
#
# The upstream: real .deb files (dpkg-deb), Proxmox layout (dists/<suite>/<comp>/binary-amd64/
# holds the packages, each suite its own copy of the shared ones, identical bytes), two suites
# sharing most packages, Packages(.gz, .xz) by apt-ftparchive, Release signed by a throwaway
# gpg key (InRelease and Release.gpg). Package sizes are spread log-uniformly between MIN_KB and
# MAX_KB, plus one big shared package of BIG_MB. nginx serves it directly and behind an added
# delay of DELAY_MS each way (tc netem on lo when the kernel has it, else benches/latency_proxy.py).
#
# Every tool starts each cold sync from an empty directory; the no-op sync is a second run right
# after, with nothing changed upstream. Times are wall seconds, RSS the peak of the largest
# process (GNU time; for apt-mirror that is one wget or the perl script, not their sum). Nobody
# fsyncs the files it downloads: mirrorbox runs with [store] fsync = false (FSYNC=true to
# change); under strace, apt-mirror (wget) and debmirror make no fsync call and aptly fsyncs only
# its database (about a dozen calls a sync), not its pool files.
#
# After the main runs, the big package is rebuilt at BIG2_MB and mirrorbox syncs again from
# empty (direct), to show whether its peak RSS follows the size of the largest package.
#
# Before/after in the same run: BASELINE_BIN names an older mirrorbox binary (e.g. the previous
# commit's release build); a tool named `baseline` then joins TOOLS (right after mirrorbox, or
# where TOOLS lists it) and runs exactly like mirrorbox: same config (same [store] fsync, same
# parallel), same set-up and counting, only the binary differs. mirrorbox and baseline then run
# ALTERNATING, PAIRS rounds per network (direct, then behind the delay): mirrorbox cold, baseline
# cold, mirrorbox cold, ...; then mirrorbox no-op, baseline no-op, ... on the last cold mirrors.
# Judged by the PAIRED MEDIAN, never by the best run: each round gives one ratio mirrorbox /
# baseline (measured back to back), and the median of those ratios decides, per metric (cold
# sync time, no-op sync time, peak RSS of the cold sync; each per network):
#
#   REGRESSION when the paired median ratio is above 1.05 for a time, above 1.10 for peak RSS;
#   else "no regression"; no verdict ("n/a") with fewer than 5 good pairs.
#
# The summary then prints, per metric: the median of mirrorbox, the median of baseline, the
# paired median ratio, the verdict and the per-round ratios; and one overall line. In the
# table, mirrorbox and baseline then show medians of the PAIRS rounds (RSS too); the peers keep
# the best of RUNS cold / NOOP_RUNS no-op runs (RSS the peak over their cold runs), and the
# "kept" column says which is which. Without BASELINE_BIN, mirrorbox keeps the best too.
#
# A benchmark, not a test: nothing runs it but a person. Usage, from anywhere:
#
#   bash benches/sync.sh
#   BASELINE_BIN=/path/to/older/mirrorbox bash benches/sync.sh   # before/after in one run
#
# Knobs (environment): PKGS (packages per suite, default 200), SHARED (of which in both suites,
# 180), MIN_KB / MAX_KB (size spread, 10 / 4096), BIG_MB (the big package, 64), BIG2_MB (the
# second size for the RSS check, 256; 0 skips it), DELAY_MS (added delay each way, 10 = 20 ms
# round trip), DELAY_METHOD (auto, netem or proxy), PARALLEL (mirrorbox's `parallel`, downloads
# at once per source; 16, its default), PEER_PARALLEL (aptly's downloadConcurrency and
# apt-mirror's nthreads; 20, apt-mirror's own default; debmirror downloads one file at a time),
# FSYNC (false), RUNS (cold syncs per tool and network, best kept, 1), NOOP_RUNS (3, best kept),
# TOOLS (default "mirrorbox aptly apt-mirror debmirror"; "baseline" is added when BASELINE_BIN is
# set), BASELINE_BIN (an older mirrorbox binary to compare against, see above), PAIRS
# (alternating rounds of mirrorbox and baseline per network, cold and no-op, default 5; at least
# 5 for a verdict; RUNS and NOOP_RUNS then apply to the peers only), SKIP_BUILD (1 = use the
# existing binary), MIRRORBOX_BIN, KEEP_TMP (1 = keep the temp dir), NGX_PORT, PROXY_PORT.
#
# The summary also goes to benches/out/sync-<date>.txt (git-ignored).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

PKGS=${PKGS:-200}
SHARED=${SHARED:-180}
MIN_KB=${MIN_KB:-10}
MAX_KB=${MAX_KB:-4096}
BIG_MB=${BIG_MB:-64}
BIG2_MB=${BIG2_MB:-256}
DELAY_MS=${DELAY_MS:-10}
DELAY_METHOD=${DELAY_METHOD:-auto}
PARALLEL=${PARALLEL:-16}
PEER_PARALLEL=${PEER_PARALLEL:-20}
FSYNC=${FSYNC:-false}
RUNS=${RUNS:-1}
NOOP_RUNS=${NOOP_RUNS:-3}
TOOLS=${TOOLS:-mirrorbox aptly apt-mirror debmirror}
NGX_PORT=${NGX_PORT:-18280}
PROXY_PORT=${PROXY_PORT:-18281}
SUITES=(bookworm trixie)
COMP=pve-no-subscription
NOOP_TARGET_MS=100
COLD_TARGET=2
BASELINE_BIN=${BASELINE_BIN:-}
PAIRS=${PAIRS:-5}
PAIRS_MIN=5        # fewer good pairs give no verdict
TIME_TOLERANCE=1.05 # mirrorbox/baseline paired median above this: a time REGRESSION
RSS_TOLERANCE=1.10  # the same for peak RSS

die() { echo "sync.sh: $*" >&2; exit 1; }
((SHARED <= PKGS && SHARED >= 1)) || die "SHARED must be between 1 and PKGS"
((PAIRS >= 1)) || die "PAIRS must be at least 1 (5 or more for a verdict)"
if [ -n "$BASELINE_BIN" ]; then
  [ -x "$BASELINE_BIN" ] || die "BASELINE_BIN=$BASELINE_BIN is not an executable"
  if [[ " $TOOLS " != *" baseline "* ]]; then
    if [[ " $TOOLS " == *" mirrorbox "* ]]; then # right after mirrorbox
      tools_with=""
      for tool in $TOOLS; do
        tools_with+="$tool "
        if [ "$tool" = mirrorbox ]; then tools_with+="baseline "; fi
      done
      TOOLS=${tools_with% }
    else
      TOOLS="$TOOLS baseline"
    fi
  fi
fi
# in_tools TOOL: TOOLS lists it.
in_tools() { [[ " $TOOLS " == *" $1 "* ]]; }
# is_mb TOOL: a mirrorbox binary (mirrorbox itself or the baseline).
is_mb() { [ "$1" = mirrorbox ] || [ "$1" = baseline ]; }
# paired: mirrorbox and baseline run alternating and are judged by the paired median.
paired=0
[ -n "$BASELINE_BIN" ] && in_tools mirrorbox && in_tools baseline && paired=1

# ---- tools ---------------------------------------------------------------------------------

PATH=$PATH:/usr/sbin:/sbin
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need nginx nginx-light
need apt-ftparchive apt-utils
need dpkg-deb dpkg
need gpg gpg
need gpgv gpgv
need xz xz-utils
need curl curl
need python3 python3
[ -x /usr/bin/time ] || missing+=(time)
for tool in $TOOLS; do
  case $tool in
    aptly) need aptly aptly ;;
    apt-mirror) need apt-mirror apt-mirror; need wget wget ;;
    debmirror) need debmirror debmirror ;;
  esac
done
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "${missing[@]}" >/dev/null ||
      { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; } ||
      echo "sync.sh: could not install all of: ${missing[*]} (those tools show as n/a)" >&2
  else
    echo "sync.sh: missing: ${missing[*]} (tools that need them show as n/a)" >&2
  fi
fi
for cmd in nginx apt-ftparchive dpkg-deb gpg xz curl python3; do
  command -v "$cmd" >/dev/null 2>&1 || die "$cmd is required"
done
[ -x /usr/bin/time ] || die "/usr/bin/time is required (apt-get install time)"

# ---- build ---------------------------------------------------------------------------------

# shellcheck source=benches/lib.sh
source "$here/lib.sh"
mirrorbox_binary "$root"

# ---- temp dir and cleanup ------------------------------------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mirrorbox-syncbench.XXXXXX")
pids=()
netem_on=0
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  ((netem_on)) && tc qdisc del dev lo root 2>/dev/null
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

details=$tmp/details.txt
: >"$details"
log() { echo "$*" | tee -a "$details"; }

for port in "$NGX_PORT" "$PROXY_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port is already in use (set NGX_PORT / PROXY_PORT)"
  fi
done

# ---- the upstream --------------------------------------------------------------------------

up=$tmp/upstream
export GNUPGHOME=$tmp/gnupg
mkdir -p "$up" "$tmp/debs" "$tmp/build" "$GNUPGHOME"
chmod 700 "$GNUPGHOME"
gpg --batch --quiet --passphrase '' --quick-gen-key 'bench <b@example.org>' ed25519 sign never 2>/dev/null
gpg --batch --export >"$tmp/key.gpg"
[ -s "$tmp/key.gpg" ] || die "gpg made no key"

# build_deb NAME VERSION BYTES OUT: a package whose payload is BYTES random bytes.
build_deb() {
  local name=$1 version=$2 bytes=$3 out=$4 tree=$tmp/build/$1
  mkdir -p "$tree/DEBIAN" "$tree/usr/share/$name"
  cat >"$tree/DEBIAN/control" <<EOF
Package: $name
Version: $version
Architecture: amd64
Section: utils
Priority: optional
Maintainer: Bench <b@example.org>
Description: benchmark package $name
EOF
  head -c "$bytes" /dev/urandom >"$tree/usr/share/$name/data.bin"
  dpkg-deb --root-owner-group -Znone --build "$tree" "$out" >/dev/null
  rm -rf "$tree"
}

# The package list: name, payload bytes, suites ("both", or one suite). Sizes log-uniform
# between MIN_KB and MAX_KB from a fixed seed, so every run builds the same sizes.
own=$((PKGS - SHARED))
awk -v pkgs="$PKGS" -v shared="$SHARED" -v own="$own" -v lo="$MIN_KB" -v hi="$MAX_KB" \
  -v big="$BIG_MB" -v s1="${SUITES[0]}" -v s2="${SUITES[1]}" 'BEGIN {
    srand(42)
    print "bigpkg", big * 1048576, "both"
    for (i = 1; i < shared; i++) printf "pkg%03d %d both\n", i, int(exp(log(lo) + rand() * (log(hi) - log(lo))) * 1024)
    for (i = 1; i <= own; i++) printf "%s%03d %d %s\n", substr(s1, 1, 2), i, int(exp(log(lo) + rand() * (log(hi) - log(lo))) * 1024), s1
    for (i = 1; i <= own; i++) printf "%s%03d %d %s\n", substr(s2, 1, 2), i, int(exp(log(lo) + rand() * (log(hi) - log(lo))) * 1024), s2
  }' >"$tmp/packages.list"

echo "building $(wc -l <"$tmp/packages.list") packages ($PKGS per suite, $SHARED shared, big one $BIG_MB MB) in $tmp..."
jobs_running=0
while read -r name bytes _; do
  build_deb "$name" 1.0-1 "$bytes" "$tmp/debs/${name}_1.0-1_amd64.deb" &
  jobs_running=$((jobs_running + 1))
  if ((jobs_running >= $(nproc))); then wait -n; jobs_running=$((jobs_running - 1)); fi
done <"$tmp/packages.list"
wait

# place: copies every package into the suites that carry it (each suite its own copy).
place() {
  local name bytes where s
  for s in "${SUITES[@]}"; do mkdir -p "$up/dists/$s/$COMP/binary-amd64"; done
  while read -r name bytes where; do
    for s in "${SUITES[@]}"; do
      if [ "$where" = both ] || [ "$where" = "$s" ]; then
        cp -f "$tmp/debs/${name}_1.0-1_amd64.deb" "$up/dists/$s/$COMP/binary-amd64/"
      fi
    done
  done <"$tmp/packages.list"
}

# index SUITE: Packages, Packages.gz, Packages.xz, Release, InRelease, Release.gpg.
index() {
  local s=$1 bin=dists/$1/$COMP/binary-amd64
  (
    cd "$up"
    rm -f "$bin"/Packages* "dists/$s/Release" "dists/$s/InRelease" "dists/$s/Release.gpg"
    apt-ftparchive packages "$bin" >"$tmp/Packages.new" 2>/dev/null
    mv "$tmp/Packages.new" "$bin/Packages"
    gzip -9nk "$bin/Packages"
    xz -k "$bin/Packages"
    apt-ftparchive -o "APT::FTPArchive::Release::Suite=$s" -o "APT::FTPArchive::Release::Codename=$s" \
      -o APT::FTPArchive::Release::Origin=Bench -o APT::FTPArchive::Release::Label=Bench \
      -o APT::FTPArchive::Release::Architectures=amd64 -o "APT::FTPArchive::Release::Components=$COMP" \
      release "dists/$s" >"$tmp/Release.new"
    mv "$tmp/Release.new" "dists/$s/Release"
    gpg --batch --yes --clearsign -o "dists/$s/InRelease" "dists/$s/Release"
    gpg --batch --yes --armor --detach-sign -o "dists/$s/Release.gpg" "dists/$s/Release"
  )
}

place
for s in "${SUITES[@]}"; do index "$s"; done
deb_files=$(find "$up" -name '*.deb' | wc -l)
deb_distinct=$(find "$up" -name '*.deb' -exec sha256sum {} + | awk '{print $1}' | sort -u | wc -l)
up_bytes=$(du -sb "$up" | cut -f1)
largest_other=$(awk '$1 != "bigpkg" { if ($2 > m) m = $2 } END { print m }' "$tmp/packages.list")

# ---- nginx and the delay -------------------------------------------------------------------

mkdir -p "$tmp/nginx"
nginx_user=""
[ "$(id -u)" = 0 ] && nginx_user="user root;"
cat >"$tmp/nginx/nginx.conf" <<EOF
$nginx_user
worker_processes auto;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 4096; }
http {
  log_format bench '\$status \$body_bytes_sent \$request';
  access_log $tmp/nginx/access.log bench;
  client_body_temp_path $tmp/nginx/body;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 100000;
  keepalive_timeout 75s;
  server {
    listen 127.0.0.1:$NGX_PORT;
    root $up;
  }
}
EOF
nginx -t -q -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" || die "nginx rejects the config"
nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" 2>>"$tmp/nginx/error.log" &
pids+=($!)
deadline=$((SECONDS + 30))
until curl -sf -o /dev/null "http://127.0.0.1:$NGX_PORT/dists/${SUITES[0]}/InRelease"; do
  ((SECONDS < deadline)) || die "nginx does not answer"
  sleep 0.1
done

method=$DELAY_METHOD
if [ "$method" = auto ]; then
  method=proxy
  if tc qdisc add dev lo root netem delay 0ms 2>/dev/null; then
    tc qdisc del dev lo root 2>/dev/null || true
    method=netem
  fi
fi
delay_on() {
  if [ "$method" = netem ]; then
    tc qdisc add dev lo root netem delay "${DELAY_MS}ms" limit 100000 || die "tc netem failed"
    netem_on=1
  fi
}
delay_off() {
  if ((netem_on)); then tc qdisc del dev lo root; netem_on=0; fi
}
case $method in
  netem)
    delayed_port=$NGX_PORT
    delay_note="tc netem on lo, ${DELAY_MS} ms each way (all loopback traffic, ${DELAY_MS}x2 ms round trip)" ;;
  proxy)
    python3 "$here/latency_proxy.py" "$PROXY_PORT" 127.0.0.1 "$NGX_PORT" "$DELAY_MS" >"$tmp/proxy.out" 2>"$tmp/proxy.err" &
    pids+=($!)
    deadline=$((SECONDS + 30))
    until grep -qs '^ready' "$tmp/proxy.out"; do
      ((SECONDS < deadline)) || { cat "$tmp/proxy.err" >&2; die "the latency proxy did not start"; }
      sleep 0.1
    done
    delayed_port=$PROXY_PORT
    delay_note="benches/latency_proxy.py (tc netem unavailable or not chosen), ${DELAY_MS} ms each way per chunk, $((2 * DELAY_MS)) ms round trip, a new connection one more round trip" ;;
  *) die "DELAY_METHOD must be auto, netem or proxy" ;;
esac

# A quick look at the delay: time of a small request, and throughput of the big package.
probe() { # PORT -> "small-request-ms big-MB/s"
  local t big
  t=$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$1/dists/${SUITES[0]}/Release")
  big=$(curl -s -o /dev/null -w '%{speed_download}' "http://127.0.0.1:$1/dists/${SUITES[0]}/$COMP/binary-amd64/bigpkg_1.0-1_amd64.deb")
  awk -v t="$t" -v b="$big" 'BEGIN { printf "%.1f ms per small request (new connection), %.0f MB/s for the big package", t * 1000, b / 1e6 }'
}
direct_probe=$(probe "$NGX_PORT")
delay_on
delayed_probe=$(probe "$delayed_port")
delay_off

log "machine: $(nproc) CPUs, $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
log "mirrorbox: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$root" diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')${custom_bin:+ BUT running MIRRORBOX_BIN=$custom_bin}; [store] fsync = $FSYNC, parallel = $PARALLEL per source (sources at once)"
if [ -n "$BASELINE_BIN" ]; then
  base_sum=$(sha256sum "$BASELINE_BIN" | cut -c1-12)
  log "baseline: BASELINE_BIN=$BASELINE_BIN (sha256 $base_sum...)$([ "$base_sum" = "$(sha256sum "$MIRRORBOX_BIN" | cut -c1-12)" ] && echo ', the same bytes as the mirrorbox binary (an A/A run)'), the same config as mirrorbox; $( ((paired)) && echo "$PAIRS alternating rounds per network, paired median" || echo "not paired (TOOLS lacks mirrorbox), best of runs")"
fi
log "peers: aptly downloadConcurrency = $PEER_PARALLEL (mirror create not timed), apt-mirror nthreads = $PEER_PARALLEL, debmirror one download at a time; no peer fsyncs its downloads"
log "versions: $(for t in aptly apt-mirror debmirror; do printf '%s %s; ' "$t" "$(dpkg-query -W -f '${Version}' "$t" 2>/dev/null || echo absent)"; done)nginx $(nginx -v 2>&1 | sed 's/.*\///')"
log "upstream: $deb_files .deb files ($deb_distinct distinct) in ${#SUITES[@]} suites (${SUITES[*]}), $COMP, Proxmox layout, $((up_bytes / 1048576)) MB on disk; sizes ${MIN_KB} KB..$((largest_other / 1024)) KB log-uniform + bigpkg $BIG_MB MB"
log "delay: $delay_note"
log "  direct:  $direct_probe"
log "  delayed: $delayed_probe"

# ---- the tools -----------------------------------------------------------------------------

# Each tool: prep_<tool> DIR URL sets up an empty mirror in DIR (not timed); sync_<tool> DIR URL
# runs one sync (timed); count_<tool> DIR prints the number of .deb paths the mirror holds.

prep_mirrorbox() {
  local dir=$1 url=$2 s
  mkdir -p "$dir"
  {
    echo "data_dir = \"$dir/data\""
    echo "[server]"
    echo "http = []"
    echo "[store]"
    echo "fsync = $FSYNC"
    for s in "${SUITES[@]}"; do
      cat <<EOF
[[source]]
id = "pve_$s"
kind = "apt"
mount = "/pve-$s"
repository = "deb $url $s $COMP"
architectures = ["amd64"]
keys = ["$tmp/key.gpg"]
parallel = $PARALLEL
EOF
    done
  } >"$dir/mirrorbox.toml"
}
data_mirrorbox() { echo "$1/data"; }
count_mirrorbox() {
  # .deb paths in the current snapshots (manifests are objects named by refs/<source>/current).
  local dir=$1 s id n=0 c
  for s in "${SUITES[@]}"; do
    id=$(tr -d '[:space:]' 2>/dev/null <"$dir/data/refs/pve_$s/current") || true
    [ -n "$id" ] || continue
    c=$(grep -o '_amd64\.deb"' "$dir/data/objects/sha256/${id:0:2}/$id" 2>/dev/null | wc -l) || true
    n=$((n + c))
  done
  echo "$n"
}

# The baseline: an older mirrorbox binary (BASELINE_BIN), set up and counted like mirrorbox.
prep_baseline() { prep_mirrorbox "$@"; }
data_baseline() { data_mirrorbox "$@"; }
count_baseline() { count_mirrorbox "$@"; }

prep_aptly() {
  local dir=$1 url=$2 s
  mkdir -p "$dir/home" "$dir/root"
  cat >"$dir/aptly.conf" <<EOF
{
  "rootDir": "$dir/root",
  "downloadConcurrency": $PEER_PARALLEL,
  "architectures": ["amd64"],
  "gpgProvider": "gpg",
  "dependencyFollowSuggests": false,
  "dependencyFollowRecommends": false,
  "dependencyFollowAllVariants": false,
  "dependencyFollowSource": false
}
EOF
  for s in "${SUITES[@]}"; do
    HOME=$dir/home aptly -config="$dir/aptly.conf" mirror create -keyring="$tmp/key.gpg" \
      -architectures=amd64 "pve_$s" "$url" "$s" "$COMP" >>"$dir/prep.log" 2>&1 || return
  done
}
sync_aptly() {
  local dir=$1 s
  for s in "${SUITES[@]}"; do
    HOME=$dir/home aptly -config="$dir/aptly.conf" mirror update -keyring="$tmp/key.gpg" "pve_$s" || return
  done
}
data_aptly() { echo "$1/root"; }
count_aptly() {
  local dir=$1 s n=0 c
  for s in "${SUITES[@]}"; do
    c=$(HOME=$dir/home aptly -config="$dir/aptly.conf" mirror show "pve_$s" 2>/dev/null |
      awk -F': ' '/^Number of packages/ { print $2 }')
    n=$((n + ${c:-0}))
  done
  echo "$n"
}

prep_apt-mirror() {
  local dir=$1 url=$2 s
  mkdir -p "$dir/mirror" "$dir/skel" "$dir/var"
  {
    echo "set base_path $dir"
    echo "set mirror_path $dir/mirror"
    echo "set skel_path $dir/skel"
    echo "set var_path $dir/var"
    echo "set defaultarch amd64"
    echo "set nthreads $PEER_PARALLEL"
    echo "set _tilde 0"
    echo "set run_postmirror 0"
    for s in "${SUITES[@]}"; do echo "deb-amd64 $url $s $COMP"; done
  } >"$dir/mirror.list"
  # apt-mirror drops the port from the paths it reads while wget keeps it in the paths it
  # writes (host:port/): links make both name the same directories.
  local hostport
  hostport=$(sed -E 's,^http://([^/]*)/.*,\1,' <<<"$url")
  if [ "$hostport" != "${hostport%%:*}" ]; then
    mkdir -p "$dir/skel/$hostport" "$dir/mirror/$hostport"
    ln -s "$hostport" "$dir/skel/${hostport%%:*}"
    ln -s "$hostport" "$dir/mirror/${hostport%%:*}"
  fi
}
sync_apt-mirror() { apt-mirror "$1/mirror.list"; }
data_apt-mirror() { echo "$1/mirror"; }
count_apt-mirror() { find "$1/mirror" -name '*.deb' -type f | wc -l; }

prep_debmirror() { mkdir -p "$1"; echo "$2" >"$1/url"; }
sync_debmirror() {
  local dir=$1 hostport
  hostport=$(sed -E 's,^http://([^/]*)/.*,\1,' "$dir/url")
  HOME=$dir debmirror --host="$hostport" --root=/ --method=http --dist="$(
    IFS=,
    echo "${SUITES[*]}"
  )" --section="$COMP" --arch=amd64 --nosource --diff=none --rsync-extra=none \
    --keyring="$tmp/key.gpg" "$dir/mirror"
}
data_debmirror() { echo "$1/mirror"; }
count_debmirror() { find "$1/mirror" -name '*.deb' -type f | wc -l; }

# ---- measuring -----------------------------------------------------------------------------

requests_so_far() { wc -l <"$tmp/nginx/access.log"; }

# timed TOOL DIR URL LOG: one sync; sets t_wall (s), t_rss (KB), t_ok (1/0), t_req (requests).
timed() {
  local tool=$1 dir=$2 url=$3 logf=$4 r0 rc=0 bin=""
  case $tool in mirrorbox) bin=$MIRRORBOX_BIN ;; baseline) bin=$BASELINE_BIN ;; esac
  sync
  r0=$(requests_so_far)
  local t0=$EPOCHREALTIME t1
  if [ -n "$bin" ]; then # no shell in between: its no-op sync takes milliseconds
    /usr/bin/time -f '%M' -o "$tmp/time.out" "$bin" sync --config "$dir/mirrorbox.toml" >"$logf" 2>&1 || rc=$?
  else
    /usr/bin/time -f '%M' -o "$tmp/time.out" bash -c "$(declare -f "sync_$tool"); $(declare -p tmp SUITES COMP); sync_$tool \"\$@\"" _ "$dir" "$url" >"$logf" 2>&1 || rc=$?
  fi
  t1=$EPOCHREALTIME
  t_wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
  t_rss=$(tail -n 1 "$tmp/time.out")
  t_req=$(($(requests_so_far) - r0))
  t_ok=$((rc == 0))
}

declare -A res
fmt_s() { awk -v s="$1" 'BEGIN { if (s == "") print "n/a"; else if (s < 1) printf "%.1f ms", s * 1000; else printf "%.2f s", s }'; }
fmt_mb() { awk -v k="$1" 'BEGIN { if (k == "") print "n/a"; else printf "%.0f MB", k / 1024 }'; }
min_of() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "") print b; else if (b == "") print a; else print (a + 0 < b + 0) ? a : b }'; }
max_of() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "") print b; else if (b == "") print a; else print (a + 0 > b + 0) ? a : b }'; }

# median VALUES...: the median of the values (empty if none).
median() {
  printf '%s\n' "$@" | awk 'NF' | sort -g | awk '{ v[NR] = $1 } END {
    if (NR) print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

expected=$((2 * PKGS))
url_of() { if [ "$1" = direct ]; then echo "http://127.0.0.1:$NGX_PORT/"; else echo "http://127.0.0.1:$delayed_port/"; fi; }
# sources_of LOG: mirrorbox's per-source lines of one sync, into the details.
sources_of() { grep '^pve_' "$1" | sed 's/^/    /' | tee -a "$details" || true; }

# cold_sync TOOL NET DIR R: sets up an empty mirror in DIR (not timed) and times cold sync #R into
# it (t_wall, t_rss, t_req, t_ok); on failure logs why, sets res[TOOL.fail] and returns 1.
cold_sync() {
  local tool=$1 net=$2 dir=$3 r=$4 url n disk
  url=$(url_of "$net")
  rm -rf "$dir"
  sync
  if ! "prep_$tool" "$dir" "$url" >>"$tmp/$tool.prep.log" 2>&1; then
    log "  $tool $net: set-up FAILED (see below)"
    tail -n 5 "$tmp/$tool.prep.log" "$dir/prep.log" 2>/dev/null | sed 's/^/    /' | tee -a "$details"
    res[$tool.fail]="set-up failed"
    return 1
  fi
  timed "$tool" "$dir" "$url" "$tmp/$tool.$net.cold$r.log"
  n=$("count_$tool" "$dir")
  if ((!t_ok)) || ((n != expected)); then
    log "  $tool $net cold: FAILED (exit ok=$t_ok, $n of $expected .deb paths) after $(fmt_s "$t_wall"); last lines:"
    tail -n 8 "$tmp/$tool.$net.cold$r.log" | sed 's/^/    /' | tee -a "$details"
    res[$tool.fail]="cold sync failed ($n of $expected .deb paths)"
    return 1
  fi
  disk=$(du -sb "$("data_$tool" "$dir")" | cut -f1)
  log "  $tool $net cold #$r: $(fmt_s "$t_wall"), peak RSS $(fmt_mb "$t_rss"), $t_req requests, $n .deb paths, $((disk / 1048576)) MB on disk"
  res[$tool.disk]=$disk
  res[$tool.$net.req]=$t_req
}

# noop_sync TOOL NET DIR R: times no-op sync #R of the mirror in DIR; like cold_sync on failure.
noop_sync() {
  local tool=$1 net=$2 dir=$3 r=$4
  timed "$tool" "$dir" "$(url_of "$net")" "$tmp/$tool.$net.noop$r.log"
  if ((!t_ok)); then
    log "  $tool $net no-op: FAILED; last lines:"
    tail -n 8 "$tmp/$tool.$net.noop$r.log" | sed 's/^/    /' | tee -a "$details"
    res[$tool.fail]="no-op sync failed"
    return 1
  fi
  log "  $tool $net no-op #$r: $(fmt_s "$t_wall"), peak RSS $(fmt_mb "$t_rss"), $t_req requests"
}

# bench_tool TOOL NET(direct|delay): RUNS cold syncs then NOOP_RUNS no-op syncs, the best kept.
bench_tool() {
  local tool=$1 net=$2 dir=$tmp/run/$1 r
  for ((r = 1; r <= RUNS; r++)); do
    cold_sync "$tool" "$net" "$dir" "$r" || return 0
    res[$tool.$net.cold]=$(min_of "${res[$tool.$net.cold]:-}" "$t_wall")
    res[$tool.rss]=$(max_of "${res[$tool.rss]:-}" "$t_rss")
  done
  if is_mb "$tool"; then sources_of "$tmp/$tool.$net.cold$RUNS.log"; fi
  for ((r = 1; r <= NOOP_RUNS; r++)); do
    noop_sync "$tool" "$net" "$dir" "$r" || return 0
    res[$tool.$net.noop]=$(min_of "${res[$tool.$net.noop]:-}" "$t_wall")
  done
  if is_mb "$tool"; then sources_of "$tmp/$tool.$net.noop$NOOP_RUNS.log"; fi
  rm -rf "$dir"
}

# bench_pair NET: mirrorbox and baseline alternating, PAIRS rounds of cold syncs (each from
# empty), then PAIRS rounds of no-op syncs on the last cold mirrors. Every value is kept, in
# round order (res[TOOL.NET.cold.all], .noop.all, .rss.all); the table gets the medians.
bench_pair() {
  local net=$1 r tool
  local -a all
  log "  mirrorbox and baseline alternating, $PAIRS rounds (load average before: $(cut -d' ' -f1-3 /proc/loadavg))"
  for ((r = 1; r <= PAIRS; r++)); do
    for tool in mirrorbox baseline; do
      cold_sync "$tool" "$net" "$tmp/run/$tool" "$r" || return 0
      res[$tool.$net.cold.all]+=" $t_wall"
      res[$tool.$net.rss.all]+=" $t_rss"
    done
  done
  for tool in mirrorbox baseline; do sources_of "$tmp/$tool.$net.cold$PAIRS.log"; done
  for ((r = 1; r <= PAIRS; r++)); do
    for tool in mirrorbox baseline; do
      noop_sync "$tool" "$net" "$tmp/run/$tool" "$r" || return 0
      res[$tool.$net.noop.all]+=" $t_wall"
    done
  done
  for tool in mirrorbox baseline; do
    sources_of "$tmp/$tool.$net.noop$PAIRS.log"
    read -r -a all <<<"${res[$tool.$net.cold.all]}"
    res[$tool.$net.cold]=$(median "${all[@]}")
    read -r -a all <<<"${res[$tool.$net.noop.all]}"
    res[$tool.$net.noop]=$(median "${all[@]}")
    read -r -a all <<<"${res[$tool.direct.rss.all]:-} ${res[$tool.delay.rss.all]:-}"
    res[$tool.rss]=$(median "${all[@]}")
    rm -rf "$tmp/run/$tool"
  done
  log "  (load average after: $(cut -d' ' -f1-3 /proc/loadavg))"
}

available() {
  case $1 in
    mirrorbox) return 0 ;;
    baseline) [ -n "$BASELINE_BIN" ] ;;
    aptly) command -v aptly >/dev/null ;;
    apt-mirror) command -v apt-mirror >/dev/null && command -v wget >/dev/null ;;
    debmirror) command -v debmirror >/dev/null ;;
    *) return 1 ;;
  esac
}

for tool in $TOOLS; do
  if [ "$tool" = baseline ] && [ -z "$BASELINE_BIN" ]; then res[$tool.fail]="BASELINE_BIN not set"; continue; fi
  available "$tool" || res[$tool.fail]="not installed"
done

for net in direct delay; do
  log ""
  if [ "$net" = direct ]; then log "direct (nginx on 127.0.0.1:$NGX_PORT)"; else log "behind the delay (127.0.0.1:$delayed_port)"; fi
  [ "$net" = delay ] && delay_on
  pair_done=0
  for tool in $TOOLS; do
    if ((paired)) && is_mb "$tool"; then
      ((pair_done)) && continue
      pair_done=1
      if [ -n "${res[mirrorbox.fail]:-}${res[baseline.fail]:-}" ]; then
        log "  mirrorbox and baseline: n/a (mirrorbox: ${res[mirrorbox.fail]:-ok}; baseline: ${res[baseline.fail]:-ok})"
        continue
      fi
      bench_pair "$net"
      continue
    fi
    [ -n "${res[$tool.fail]:-}" ] && { log "  $tool: n/a (${res[$tool.fail]})"; continue; }
    bench_tool "$tool" "$net"
  done
  [ "$net" = delay ] && delay_off
done

# ---- RSS against the size of the big package -----------------------------------------------

rss2=""
if [ "$BIG2_MB" != 0 ] && [[ " $TOOLS " == *" mirrorbox "* ]] && [ -z "${res[mirrorbox.fail]:-}" ]; then
  log ""
  log "mirrorbox with the big package rebuilt at $BIG2_MB MB (direct, cold)"
  build_deb bigpkg 1.0-1 $((BIG2_MB * 1048576)) "$tmp/debs/bigpkg_1.0-1_amd64.deb"
  for s in "${SUITES[@]}"; do
    cp -f "$tmp/debs/bigpkg_1.0-1_amd64.deb" "$up/dists/$s/$COMP/binary-amd64/"
    index "$s"
  done
  dir=$tmp/run/mirrorbox-big2
  for ((r = 1; r <= RUNS; r++)); do
    rm -rf "$dir"
    prep_mirrorbox "$dir" "http://127.0.0.1:$NGX_PORT/"
    timed mirrorbox "$dir" "http://127.0.0.1:$NGX_PORT/" "$tmp/mirrorbox.big2.log"
    if ((t_ok)); then
      log "  mirrorbox big $BIG2_MB MB cold #$r: $(fmt_s "$t_wall"), peak RSS $(fmt_mb "$t_rss"), $(count_mirrorbox "$dir") .deb paths"
      rss2=$(max_of "$rss2" "$t_rss")
    else
      log "  mirrorbox big $BIG2_MB MB: FAILED"
      tail -n 8 "$tmp/mirrorbox.big2.log" | sed 's/^/    /' | tee -a "$details"
    fi
  done
  rm -rf "$dir"
fi

# ---- summary -------------------------------------------------------------------------------

summary=$tmp/summary.txt
fastest() { # NET: the fastest peer's cold time and name
  local best="" name="" t v
  for t in $TOOLS; do
    is_mb "$t" && continue
    v=${res[$t.$1.cold]:-}
    [ -n "$v" ] || continue
    if [ -z "$best" ] || awk -v a="$v" -v b="$best" 'BEGIN { exit !(a < b) }'; then best=$v name=$t; fi
  done
  echo "$best $name"
}
ratio() { awk -v p="$1" -v m="$2" 'BEGIN { if (p == "" || m == "" || m == 0) print "-"; else printf "%.2fx", p / m }'; }
# kept TOOL: what the table shows for it (paired median or best of the runs).
kept() { if ((paired)) && is_mb "$1"; then echo "median of $PAIRS"; else echo "best of $RUNS/$NOOP_RUNS"; fi; }
mstat=$(kept mirrorbox)

# pair_row KEY LABEL TOLERANCE FORMAT(fmt_s|fmt_mb): mirrorbox against the baseline for one metric
# (res[TOOL.KEY.all], round by round): the medians, the paired median ratio, the verdict and the
# per-round ratios. Adds the label to regressions when the paired median is above TOLERANCE.
regressions="" undecided=0
pair_row() {
  local key=$1 label=$2 tol=$3 format=$4 med verdict
  local -a a b rs
  read -r -a a <<<"${res[mirrorbox.$key.all]:-}"
  read -r -a b <<<"${res[baseline.$key.all]:-}"
  read -r -a rs <<<"$(awk -v a="${a[*]}" -v b="${b[*]}" 'BEGIN {
    n = split(a, x, " "); m = split(b, y, " ")
    for (i = 1; i <= n && i <= m; i++) if (y[i] > 0) printf "%.4f ", x[i] / y[i] }')"
  med=$(median "${rs[@]}")
  if ((${#rs[@]} < PAIRS_MIN)); then
    verdict="n/a (${#rs[@]} good pairs, $PAIRS_MIN decide)"
    undecided=$((undecided + 1))
  elif awk -v m="$med" -v t="$tol" 'BEGIN { exit !(m > t) }'; then
    verdict=REGRESSION
    regressions+="${regressions:+, }$label"
  else
    verdict="no regression"
  fi
  printf '%-19s %10s %10s %8s  %-9s %s\n' "$label" "$("$format" "$(median "${a[@]}")")" \
    "$("$format" "$(median "${b[@]}")")" "$(awk -v m="$med" 'BEGIN { if (m == "") print "-"; else printf "%.3fx", m }')" \
    "<= ${tol}x" "$verdict"
  printf '%-19s per round: %s\n' "" "$(awk -v r="${rs[*]}" 'BEGIN { n = split(r, x, " "); if (!n) printf "none"; for (i = 1; i <= n; i++) printf "%.2f ", x[i] }')"
}
{
  echo "cold: empty target, both suites; no-op: the run right after; RSS: peak of the largest"
  echo "process in the cold runs; disk: the mirror's bytes (du, hard links once); delay: $((2 * DELAY_MS)) ms"
  echo "round trip ($method). kept: 'best of C/N' = the best of C cold and N no-op runs, RSS the peak"
  echo "over the cold runs (the peers$( ((paired)) || echo ' and mirrorbox')); 'median of P' = the median of P alternating rounds,"
  echo "RSS too (mirrorbox and baseline when BASELINE_BIN is set; judged below by the paired median)"
  printf '%-11s %12s %12s %12s %12s %9s %9s  %s\n' tool "cold direct" "cold delay" "no-op direct" "no-op delay" "peak RSS" disk kept
  for t in $TOOLS; do
    if [ -n "${res[$t.fail]:-}" ] && [ -z "${res[$t.delay.noop]:-}" ]; then
      printf '%-11s %12s %12s %12s %12s %9s %9s  %s\n' "$t" n/a n/a n/a n/a n/a n/a "(${res[$t.fail]})"
      continue
    fi
    printf '%-11s %12s %12s %12s %12s %9s %9s  %s\n' "$t" "$(fmt_s "${res[$t.direct.cold]:-}")" \
      "$(fmt_s "${res[$t.delay.cold]:-}")" "$(fmt_s "${res[$t.direct.noop]:-}")" \
      "$(fmt_s "${res[$t.delay.noop]:-}")" "$(fmt_mb "${res[$t.rss]:-}")" \
      "$(awk -v b="${res[$t.disk]:-0}" 'BEGIN { printf "%.0f MB", b / 1048576 }')" "$(kept "$t")"
  done
  echo "requests per cold sync (direct): $(for t in $TOOLS; do printf '%s %s; ' "$t" "${res[$t.direct.req]:-n/a}"; done)"
  read -r fd fdn <<<"$(fastest direct)"
  read -r fl fln <<<"$(fastest delay)"
  mc=${res[mirrorbox.delay.cold]:-} md=${res[mirrorbox.direct.cold]:-} mn=${res[mirrorbox.delay.noop]:-}
  echo "fastest peer (best of $RUNS), cold direct: ${fdn:-none} $(fmt_s "$fd") -> mirrorbox ($mstat) $(ratio "$fd" "$md") faster"
  echo "targets (mirrorbox: $mstat; peers: best of $RUNS):"
  verdict=$(awk -v p="$fl" -v m="$mc" -v t="$COLD_TARGET" 'BEGIN { print (p == "" || m == "") ? "n/a" : (p / m >= t) ? "PASS" : "MISS" }')
  echo "  cold sync behind the delay >= ${COLD_TARGET}x the fastest peer (${fln:-none} $(fmt_s "$fl")): mirrorbox $(fmt_s "$mc"), $(ratio "$fl" "$mc")  $verdict"
  verdict=$(awk -v m="$mn" -v t="$NOOP_TARGET_MS" 'BEGIN { print (m == "") ? "n/a" : (m * 1000 < t) ? "PASS" : "MISS" }')
  echo "  no-op sync behind the delay < $NOOP_TARGET_MS ms: $(fmt_s "$mn") ($mstat)  $verdict"
  r1=${res[mirrorbox.rss]:-}
  if [ -n "$rss2" ] && [ -n "$r1" ]; then
    # Independent: growing the package by BIG2_MB - BIG_MB moves the peak by under 10% + 4 MB.
    verdict=$(awk -v a="$r1" -v b="$rss2" 'BEGIN { print (b <= a * 1.10 + 4096) ? "PASS" : "MISS" }')
    echo "  peak RSS independent of the largest package: $(fmt_mb "$r1") with $BIG_MB MB, $(fmt_mb "$rss2") with $BIG2_MB MB  $verdict"
  else
    echo "  peak RSS independent of the largest package: not measured (BIG2_MB=0 or the run failed)"
  fi
  if ((paired)); then
    echo
    echo "mirrorbox against the baseline ($BASELINE_BIN), $PAIRS alternating rounds per network:"
    echo "medians of the rounds; paired: the median of the per-round ratios mirrorbox/baseline, which"
    echo "decides (never the best run): REGRESSION above ${TIME_TOLERANCE}x for times, above ${RSS_TOLERANCE}x for peak RSS"
    printf '%-19s %10s %10s %8s  %-9s %s\n' metric mirrorbox baseline paired allowed verdict
    pair_row direct.cold "cold sync, direct" "$TIME_TOLERANCE" fmt_s
    pair_row delay.cold "cold sync, delay" "$TIME_TOLERANCE" fmt_s
    pair_row direct.noop "no-op sync, direct" "$TIME_TOLERANCE" fmt_s
    pair_row delay.noop "no-op sync, delay" "$TIME_TOLERANCE" fmt_s
    pair_row direct.rss "peak RSS, direct" "$RSS_TOLERANCE" fmt_mb
    pair_row delay.rss "peak RSS, delay" "$RSS_TOLERANCE" fmt_mb
    if [ -n "$regressions" ]; then
      echo "against the baseline: REGRESSION ($regressions)"
    elif ((undecided)); then
      echo "against the baseline: no verdict ($undecided of 6 metrics had fewer than $PAIRS_MIN good pairs)"
    else
      echo "against the baseline: no regression (6 of 6 metrics within tolerance)"
    fi
  fi
} >"$summary"

echo
cat "$summary"
mkdir -p "$here/out"
report=$here/out/sync-$(date +%Y%m%d-%H%M%S).txt
{
  echo "benches/sync.sh, $(date -Is)"
  echo "settings: PKGS=$PKGS SHARED=$SHARED MIN_KB=$MIN_KB MAX_KB=$MAX_KB BIG_MB=$BIG_MB BIG2_MB=$BIG2_MB DELAY_MS=$DELAY_MS DELAY_METHOD=$method PARALLEL=$PARALLEL PEER_PARALLEL=$PEER_PARALLEL FSYNC=$FSYNC RUNS=$RUNS NOOP_RUNS=$NOOP_RUNS TOOLS=\"$TOOLS\"${BASELINE_BIN:+ BASELINE_BIN=$BASELINE_BIN PAIRS=$PAIRS}"
  cat "$details"
  echo
  cat "$summary"
} >"$report"
echo "written to benches/out/$(basename "$report")"
