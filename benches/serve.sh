#!/usr/bin/env bash
# Serving benchmark: nginx (Debian nginx-light) and mirrorbox serve the same tree in one run,
# with the same clients, and the ratios are printed against the targets:
#
#   1 KB file, req/s with wrk, HTTP/1.1 keep-alive .............. >= 1.1x nginx
#   1 KB file, req/s with wrk, HTTPS/1.1 keep-alive ............. >= 1.1x nginx
#   1 GiB file, curl, plain HTTP ................................. >= 1.0x nginx
#   1 GiB file, curl, HTTPS HTTP/1.1 ............................. >= 1.0x nginx
#   RSS with 1,000 idle keep-alive connections .................. < 64 MB
#   RSS added by 4 stalled HTTP/2 connections x 256 streams ...... < 25 MB, and back down after
#
# plus, for information: h2load over HTTP/2, the 1 GiB file over HTTP/2, 500 slow readers, and
# the server CPU time per request (or per GiB), which other processes disturb much less than
# req/s does.
#
# Judged by the PAIRED MEDIAN: every run measures each server once, one right after the other,
# in an order that rotates from run to run; each run gives one ratio (mirrorbox / nginx), and
# the median of those ratios decides. The per-run ratios are printed too, never the best run.
#
# A benchmark, not a test: nothing runs it but a person.  Usage, from anywhere:
#
#   bash benches/serve.sh
#   BASELINE_BIN=/path/to/older/mirrorbox bash benches/serve.sh   # before/after in one run
#
# The machine should be otherwise idle: every run also reports the CPU used by other processes
# and is flagged DISTURBED above OTHER_MAX percent (default 10); before measuring, the script
# waits up to QUIET_WAIT seconds (default 300) for the machine to calm down.
#
# Knobs (environment): DURATION (wrk/h2load duration, default 10s), RUNS (paired runs, default
# 5, at least 5 for a verdict), WRK_THREADS (1), WRK_CONNS (50), BIG_SIZE (head -c size, default
# 1G), BIG_RUNS (paired curl runs per protocol, default RUNS), IDLE_CONNS (1000), H2LOAD (1 =
# also run h2load over HTTP/2, informational), H2_STALL_CONNS (4) and H2_STALL_STREAMS (256),
# SLOW_READERS (500), SLOW_BOUND_KB (per-connection memory bound for slow readers, default 512),
# MEMORY (0 = skip the memory figures), INGEST (copy: objects the store owns, the default;
# auto: hard-linked originals, never sent with sendfile), BASELINE_BIN (a second mirrorbox binary, e.g. the
# previous commit's build, measured in the same alternation), SKIP_BUILD (1 = use the existing
# binary), MIRRORBOX_BIN (binary to run), KEEP_TMP (1 = keep the temp dir), the ports
# MB_HTTP_PORT MB_HTTPS_PORT NGX_HTTP_PORT NGX_HTTPS_PORT BASE_HTTP_PORT BASE_HTTPS_PORT.
#
# The summary also goes to benches/out/serve-<date>.txt (git-ignored).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

DURATION=${DURATION:-10s}
RUNS=${RUNS:-5}
WRK_THREADS=${WRK_THREADS:-1}
WRK_CONNS=${WRK_CONNS:-50}
BIG_SIZE=${BIG_SIZE:-1G}
BIG_RUNS=${BIG_RUNS:-$RUNS}
IDLE_CONNS=${IDLE_CONNS:-1000}
H2LOAD=${H2LOAD:-1}
MB_HTTP_PORT=${MB_HTTP_PORT:-18080}
MB_HTTPS_PORT=${MB_HTTPS_PORT:-18443}
NGX_HTTP_PORT=${NGX_HTTP_PORT:-18081}
NGX_HTTPS_PORT=${NGX_HTTPS_PORT:-18444}
BASE_HTTP_PORT=${BASE_HTTP_PORT:-18082}
BASE_HTTPS_PORT=${BASE_HTTPS_PORT:-18445}
H2_STALL_CONNS=${H2_STALL_CONNS:-4}
H2_STALL_STREAMS=${H2_STALL_STREAMS:-256}
SLOW_READERS=${SLOW_READERS:-500}
SLOW_BOUND_KB=${SLOW_BOUND_KB:-512}
MEMORY=${MEMORY:-1}
BASELINE_BIN=${BASELINE_BIN:-}
# "copy": the store owns its objects, as it does for everything fetched from an upstream (apt,
# files, Puavo mirrors). "auto" hard-links the tree's files instead; hard-linked objects can
# change under the server, so they are copied to the socket, never sent with sendfile.
INGEST=${INGEST:-copy}
OTHER_MAX=${OTHER_MAX:-10}
QUIET_WAIT=${QUIET_WAIT:-300}
RSS_TARGET_MB=64
H2_STALL_TARGET_MB=25

die() { echo "serve.sh: $*" >&2; exit 1; }

# ---- tools ---------------------------------------------------------------------------------

PATH=$PATH:/usr/sbin:/sbin
missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
need nginx nginx-light
need wrk wrk
need curl curl
need openssl openssl
need python3 python3
[ "$H2LOAD" = 1 ] && need h2load nghttp2-client
if ((${#missing[@]})); then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq "${missing[@]}" >/dev/null ||
      { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; }
  else
    die "missing: ${missing[*]} (install them, e.g. apt-get install ${missing[*]})"
  fi
fi

# The attack clients need Python's h2: the test venv has it (tests/run.sh makes it), else a
# private one is made here.
PYTHON=${MIRRORBOX_PYTHON:-}
if [ -z "$PYTHON" ]; then
  PYTHON=python3
  [ -x "$root/target/pyenv/bin/python" ] && PYTHON=$root/target/pyenv/bin/python
fi
if ! "$PYTHON" -c 'import h2' >/dev/null 2>&1; then
  echo "installing Python's h2 for the attack clients into target/pyenv-bench..."
  python3 -m venv "$root/target/pyenv-bench" &&
    "$root/target/pyenv-bench/bin/pip" install -q --disable-pip-version-check h2 ||
    die "cannot install Python's h2 (pip install h2)"
  PYTHON=$root/target/pyenv-bench/bin/python
fi

# Enough file descriptors for the idle connections on both sides.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && (($(ulimit -n) < IDLE_CONNS + 100)); then
  die "ulimit -n is $(ulimit -n); need at least $((IDLE_CONNS + 100)) for IDLE_CONNS=$IDLE_CONNS"
fi

# ---- build ---------------------------------------------------------------------------------

# shellcheck source=benches/lib.sh
source "$here/lib.sh"
mirrorbox_binary "$root"
# ---- temp dir and cleanup ------------------------------------------------------------------

tmp=$(mktemp -d "${TMPDIR:-/tmp}/mirrorbox-bench.XXXXXX")
pids=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
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

# ---- the tree, the certificate, the configs ------------------------------------------------

echo "generating the tree in $tmp (1 KiB and $BIG_SIZE of random data)..."
mkdir -p "$tmp/tree" "$tmp/data" "$tmp/nginx"
head -c 1024 /dev/urandom >"$tmp/tree/1k.bin"
head -c "$BIG_SIZE" /dev/urandom >"$tmp/tree/big.bin"
big_bytes=$(stat -c %s "$tmp/tree/big.bin")
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$tmp/key.pem" -out "$tmp/cert.pem" -days 2 -subj /CN=localhost \
  -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null

cat >"$tmp/mirrorbox.toml" <<EOF
data_dir = "$tmp/data"
[server]
http = ["127.0.0.1:$MB_HTTP_PORT"]
https = ["127.0.0.1:$MB_HTTPS_PORT"]
access_log = false
shutdown_grace = "1s"
[server.tls]
cert = "$tmp/cert.pem"
key = "$tmp/key.pem"
[store]
fsync = false
ingest = "$INGEST"
[[source]]
id = "site"
kind = "dir"
mount = "/files"
path = "$tmp/tree"
EOF

# Workers run as root when we are root: the temp dir is private (mode 700).
nginx_user=""
[ "$(id -u)" = 0 ] && nginx_user="user root;"
cat >"$tmp/nginx/nginx.conf" <<EOF
$nginx_user
worker_processes auto;
worker_rlimit_nofile 65536;
daemon off;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx/body;
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  tcp_nodelay on;
  keepalive_requests 100000;
  keepalive_timeout 75s;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_cache shared:SSL:1m;
  server {
    listen 127.0.0.1:$NGX_HTTP_PORT;
    listen 127.0.0.1:$NGX_HTTPS_PORT ssl http2;
    ssl_certificate $tmp/cert.pem;
    ssl_certificate_key $tmp/key.pem;
    location /files/ { alias $tmp/tree/; }
  }
}
EOF

if [ -n "$BASELINE_BIN" ]; then
  [ -x "$BASELINE_BIN" ] || die "BASELINE_BIN=$BASELINE_BIN is not an executable"
  sed -e "s#127.0.0.1:$MB_HTTP_PORT#127.0.0.1:$BASE_HTTP_PORT#; s#127.0.0.1:$MB_HTTPS_PORT#127.0.0.1:$BASE_HTTPS_PORT#" \
    -e "s#^data_dir = .*#data_dir = \"$tmp/data-baseline\"#" "$tmp/mirrorbox.toml" >"$tmp/baseline.toml"
fi

for port in "$MB_HTTP_PORT" "$MB_HTTPS_PORT" "$NGX_HTTP_PORT" "$NGX_HTTPS_PORT" \
  ${BASELINE_BIN:+"$BASE_HTTP_PORT" "$BASE_HTTPS_PORT"}; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port is already in use (set the *_PORT variables)"
  fi
done

# ---- start the servers ---------------------------------------------------------------------

nginx -t -q -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" || die "nginx rejects the config"
nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" 2>>"$tmp/nginx/error.log" &
nginx_pid=$!
pids+=("$nginx_pid")

# start_mirrorbox BINARY CONFIG LOG: starts one mirrorbox and waits for its first sync; sets
# started_pid.
start_mirrorbox() {
  local bin=$1 config=$2 mlog=$3 pid deadline
  (cd "$tmp" && exec "$bin" serve --config "$config" 2>"$mlog") &
  pid=$!
  pids+=("$pid")
  echo "waiting for $(basename "$config" .toml) to ingest the tree..."
  deadline=$((SECONDS + 600))
  until grep -q "sync finished" "$mlog" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { cat "$mlog" >&2; die "$bin exited"; }
    ((SECONDS < deadline)) || die "$bin did not finish its first sync"
    sleep 0.2
  done
  started_pid=$pid
}
start_mirrorbox "$MIRRORBOX_BIN" "$tmp/mirrorbox.toml" "$tmp/mirrorbox.log"
mb_pid=$started_pid
servers=(nginx mirrorbox)
if [ -n "$BASELINE_BIN" ]; then
  start_mirrorbox "$BASELINE_BIN" "$tmp/baseline.toml" "$tmp/baseline.log"
  base_pid=$started_pid
  servers+=(baseline)
fi

# The ports of a server: http_port SERVER, https_port SERVER.
http_port() { case $1 in nginx) echo "$NGX_HTTP_PORT" ;; mirrorbox) echo "$MB_HTTP_PORT" ;; baseline) echo "$BASE_HTTP_PORT" ;; esac; }
https_port() { case $1 in nginx) echo "$NGX_HTTPS_PORT" ;; mirrorbox) echo "$MB_HTTPS_PORT" ;; baseline) echo "$BASE_HTTPS_PORT" ;; esac; }

for srv in "${servers[@]}"; do
  url="http://127.0.0.1:$(http_port "$srv")/files/1k.bin"
  deadline=$((SECONDS + 30))
  until curl -sf -o /dev/null "$url"; do
    ((SECONDS < deadline)) || die "no answer from $url"
    sleep 0.2
  done
done

# nginx's worker processes (children of the master).
nginx_workers() {
  local d ppid rest
  for d in /proc/[0-9]*; do
    read -r _ _ _ ppid rest <"$d/stat" 2>/dev/null || continue
    [ "$ppid" = "$nginx_pid" ] && echo "${d#/proc/}"
  done
  return 0
}
mapfile -t ngx_workers < <(nginx_workers)
((${#ngx_workers[@]})) || die "nginx has no workers"

# All must serve the same bytes, over every protocol.
for srv in "${servers[@]}"; do
  hp=$(http_port "$srv") sp=$(https_port "$srv")
  for f in 1k.bin; do
    cmp -s "$tmp/tree/$f" <(curl -sf "http://127.0.0.1:$hp/files/$f") || die "$srv serves wrong bytes over HTTP"
    cmp -s "$tmp/tree/$f" <(curl -sfk --http1.1 "https://127.0.0.1:$sp/files/$f") || die "$srv serves wrong bytes over HTTPS/1.1"
    cmp -s "$tmp/tree/$f" <(curl -sfk --http2 "https://127.0.0.1:$sp/files/$f") || die "$srv serves wrong bytes over HTTP/2"
  done
done

links=$(stat -c %h "$tmp/tree/big.bin")
tls_mb=$(echo | openssl s_client -connect "127.0.0.1:$MB_HTTPS_PORT" -alpn http/1.1 2>/dev/null | grep -m1 -E '^New,' || true)
tls_ngx=$(echo | openssl s_client -connect "127.0.0.1:$NGX_HTTPS_PORT" -alpn http/1.1 2>/dev/null | grep -m1 -E '^New,' || true)
log "machine: $(nproc) CPUs, $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
log "nginx: $(nginx -v 2>&1 | sed 's/.*: //'), ${#ngx_workers[@]} workers; mirrorbox: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$root" diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')${custom_bin:+ BUT running MIRRORBOX_BIN=$custom_bin}"
[ -z "$BASELINE_BIN" ] || log "baseline: $BASELINE_BIN"
log "TLS nginx: ${tls_ngx:-?}"
log "TLS mirrorbox: ${tls_mb:-?}"
log "big file: $big_bytes bytes, link count $links (2 or more = mirrorbox serves the same inode as nginx), ingest = $INGEST"
log "wrk: -t$WRK_THREADS -c$WRK_CONNS -d$DURATION, $RUNS paired runs; curl: $BIG_RUNS paired runs"

# ---- measuring helpers ---------------------------------------------------------------------

clk_tck=$(getconf CLK_TCK)
# CPU time (user + system, in ticks) used so far by the given processes, all threads.
cpu_ticks() {
  local sum=0 pid stat fields
  for pid in "$@"; do
    stat=$(<"/proc/$pid/stat")
    read -r -a fields <<<"${stat##*) }"
    sum=$((sum + fields[11] + fields[12]))
  done
  echo "$sum"
}
# Resident memory of the given processes, in KiB.
rss_kb() {
  local sum=0 pid kb
  for pid in "$@"; do
    kb=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status")
    sum=$((sum + kb))
  done
  echo "$sum"
}
mb_of() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
now() { date +%s.%N; }
# Busy CPU ticks of the whole machine so far (all CPUs).
host_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
# CPU seconds used so far by this shell's finished children (the clients), into the variable $1.
# `times` must run in this shell, not in a $(...) subshell.
client_secs() {
  times >"$tmp/times"
  printf -v "$1" '%s' "$(awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); print u[1] * 60 + u[2] + s[1] * 60 + s[2] }' "$tmp/times")"
}
# Measurement state: call mark_start, run the client, then mark_end "server pids...".
mark_start() { m_c0=$(cpu_ticks "$@"); m_h0=$(host_ticks); client_secs m_k0; m_t0=$(now); }
# Sets m_server (server CPU %), m_ticks (server CPU ticks used) and m_other (CPU % of everything
# but the servers and the client).
mark_end() {
  local t1 c1 h1 k1
  t1=$(now); c1=$(cpu_ticks "$@"); h1=$(host_ticks); client_secs k1
  m_ticks=$((c1 - m_c0))
  m_server=$(cpu_pct "$m_c0" "$c1" "$m_t0" "$t1")
  m_other=$(awk -v h0="$m_h0" -v h1="$h1" -v c0="$m_c0" -v c1="$c1" -v k0="$m_k0" -v k1="$k1" \
    -v t0="$m_t0" -v t1="$t1" -v hz="$clk_tck" \
    'BEGIN { o = ((h1 - h0) - (c1 - c0)) / hz - (k1 - k0); if (o < 0) o = 0; printf "%.0f", o / (t1 - t0) * 100 }')
  m_note="server CPU ${m_server}%, other CPU ${m_other}%"
  # (Runs under a second are too short for the 10 ms tick accounting to judge.)
  if ((m_other > OTHER_MAX)) && awk -v a="$m_t0" -v b="$t1" 'BEGIN { exit !(b - a >= 1) }'; then
    m_note+=" [DISTURBED: other processes busy]"
    disturbed=$((disturbed + 1))
  fi
}
# CPU use of the processes between two tick counts over a wall-clock span, as a percentage.
cpu_pct() { awk -v a="$1" -v b="$2" -v t0="$3" -v t1="$4" -v hz="$clk_tck" 'BEGIN { printf "%.0f", (b - a) / hz / (t1 - t0) * 100 }'; }

server_pids() {
  case $1 in
    nginx) echo "${ngx_workers[@]}" ;;
    mirrorbox) echo "$mb_pid" ;;
    baseline) echo "$base_pid" ;;
  esac
}
server_url() { # SERVER SCHEME FILE
  if [ "$2" = https ]; then echo "https://127.0.0.1:$(https_port "$1")/files/$3"; else echo "http://127.0.0.1:$(http_port "$1")/files/$3"; fi
}

# Every run's value per (metric, server), in run order; 0 = a failed run. cpu: server CPU per
# request in microseconds (wrk, h2load) or per GiB in milliseconds (curl).
declare -A series cpu result
record() { series[$1.$2]+="$3 "; cpu[$1.$2]+="$4 "; }

wrk_once() {
  local key=$1 server=$2 url=$3 out rps errs p99 n us
  local -a sp
  read -r -a sp <<<"$(server_pids "$server")"
  mark_start "${sp[@]}"
  out=$(wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$DURATION" --latency "$url")
  mark_end "${sp[@]}"
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errs=$(grep -E 'Socket errors|Non-2xx' <<<"$out" | tr -s ' ' | paste -sd';' || true)
  us=$(awk -v t="$m_ticks" -v n="${n:-0}" -v hz="$clk_tck" 'BEGIN { if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print 0 }')
  log "  $key $server: ${rps:-0} req/s, p99 ${p99:-?}, ${us} us CPU/request, $m_note${errs:+, $errs}"
  [ -z "$errs" ] || rps=0 # errors make a run worthless
  record "$key" "$server" "${rps:-0}" "$us"
}

h2load_once() {
  local key=$1 server=$2 url=$3 out rps failed n us
  local -a sp
  read -r -a sp <<<"$(server_pids "$server")"
  mark_start "${sp[@]}"
  out=$(h2load -t"$WRK_THREADS" -c"$WRK_CONNS" -m10 -D"${DURATION%s}" --warm-up-time=1 "$url" 2>&1)
  mark_end "${sp[@]}"
  rps=$(awk '/^finished in/ {gsub(",", ""); print $4}' <<<"$out")
  n=$(awk '/^requests:/ {print $8}' <<<"$out")
  failed=$(awk '/^requests:/ {print $10}' <<<"$out")
  # (The CPU ticks include the warm-up second, so this slightly overstates per-request CPU.)
  us=$(awk -v t="$m_ticks" -v n="${n:-0}" -v hz="$clk_tck" 'BEGIN { if (n > 0) printf "%.2f", t / hz * 1e6 / n; else print 0 }')
  log "  $key $server: ${rps:-0} req/s, failed ${failed:-?}, $m_note"
  [ "${failed:-1}" = 0 ] || rps=0
  record "$key" "$server" "${rps:-0}" "$us"
}

curl_once() {
  local key=$1 server=$2 url=$3 out code size speed ver ms
  shift 3
  local -a sp
  read -r -a sp <<<"$(server_pids "$server")"
  mark_start "${sp[@]}"
  out=$(curl -sk -o /dev/null "$@" -w '%{http_code} %{size_download} %{speed_download} %{http_version}' "$url" || true)
  mark_end "${sp[@]}"
  read -r code size speed ver <<<"$out"
  ms=$(awk -v t="$m_ticks" -v hz="$clk_tck" -v b="$big_bytes" 'BEGIN { printf "%.0f", t / hz * 1000 * 1073741824 / b }')
  if [ "$code" != 200 ] || [ "$size" != "$big_bytes" ]; then
    log "  $key $server: FAILED (status ${code:-?}, $size of $big_bytes bytes)"
    speed=0
  else
    log "  $key $server: $(awk -v s="$speed" 'BEGIN { printf "%.0f", s / 1e6 }') MB/s (HTTP/$ver), ${ms} ms CPU/GiB, $m_note"
  fi
  record "$key" "$server" "$(awk -v s="$speed" 'BEGIN { printf "%.1f", s / 1e6 }')" "$ms"
}

# ---- memory probes -------------------------------------------------------------------------

# hold_rss KEY SERVER SETTLE SCRIPT ARGS...: RSS of SERVER before, while SCRIPT holds its
# connections open (it prints "ready" when they all are) and SETTLE seconds after it was
# killed. Sets result[KEY.SERVER.before|during|after] in KiB; returns 1 if the script failed.
hold_rss() {
  local key=$1 server=$2 settle=$3 script=$4 holder before during after deadline
  shift 4
  local -a sp
  read -r -a sp <<<"$(server_pids "$server")"
  before=$(rss_kb "${sp[@]}")
  "$PYTHON" "$script" "$@" >"$tmp/hold.out" 2>"$tmp/hold.err" &
  holder=$!
  pids+=("$holder")
  deadline=$((SECONDS + 180))
  until grep -qs '^ready' "$tmp/hold.out"; do
    if ! kill -0 "$holder" 2>/dev/null || ((SECONDS > deadline)); then
      log "  $key $server: FAILED: $(basename "$script") did not get ready: $(tail -c 300 "$tmp/hold.err" | tr '\n' ' ')"
      kill "$holder" 2>/dev/null || true
      wait "$holder" 2>/dev/null || true
      return 1
    fi
    sleep 0.2
  done
  sleep 2
  during=$(rss_kb "${sp[@]}")
  kill "$holder" 2>/dev/null || true
  wait "$holder" 2>/dev/null || true
  sleep "$settle"
  after=$(rss_kb "${sp[@]}")
  result[$key.$server.before]=$before
  result[$key.$server.during]=$during
  result[$key.$server.after]=$after
  log "  $key $server: $(mb_of "$before") MB before, $(mb_of "$during") MB held ($(mb_of $((during - before))) MB added), $(mb_of "$after") MB ${settle}s after close"
}

mirrorboxes=(mirrorbox)
[ -z "$BASELINE_BIN" ] || mirrorboxes+=(baseline)

memory_figures() { # PHASE
  local srv script
  log "RSS with $IDLE_CONNS idle keep-alive connections ($1; nginx: sum of workers)"
  for srv in "${servers[@]}"; do
    hold_rss "idle_http_$1" "$srv" 1 "$here/idle_conns.py" 127.0.0.1 "$(http_port "$srv")" /files/1k.bin "$IDLE_CONNS" || true
  done
  if [ "$1" = fresh ]; then
    for srv in "${servers[@]}"; do
      hold_rss idle_https "$srv" 1 "$here/idle_conns.py" 127.0.0.1 "$(https_port "$srv")" /files/1k.bin "$IDLE_CONNS" --tls || true
    done
  fi
  script=$here/h2_stall.py
  log "RSS with $H2_STALL_CONNS stalled HTTP/2 connections x $H2_STALL_STREAMS streams of the big file ($1)"
  if [ -f "$script" ]; then
    for srv in "${mirrorboxes[@]}"; do
      hold_rss "h2_stall_$1" "$srv" 3 "$script" 127.0.0.1 "$(https_port "$srv")" /files/big.bin \
        --connections "$H2_STALL_CONNS" --streams "$H2_STALL_STREAMS" --tls || true
    done
  else
    log "  skipped: script missing (benches/h2_stall.py)"
  fi
  script=$here/slow_readers.py
  log "RSS with $SLOW_READERS slow readers of the big file, plain HTTP ($1)"
  if [ -f "$script" ]; then
    for srv in "${mirrorboxes[@]}"; do
      hold_rss "slow_$1" "$srv" 3 "$script" 127.0.0.1 "$(http_port "$srv")" /files/big.bin \
        --connections "$SLOW_READERS" || true
    done
  else
    log "  skipped: script missing (benches/slow_readers.py)"
  fi
}

# ---- the runs ------------------------------------------------------------------------------

disturbed=0
# Waits (up to QUIET_WAIT seconds) until other processes use at most OTHER_MAX % of one CPU.
quiet_wait() {
  local deadline=$((SECONDS + QUIET_WAIT)) h0 h1 busy
  while :; do
    h0=$(host_ticks); sleep 2; h1=$(host_ticks)
    busy=$(((h1 - h0) * 100 / clk_tck / 2))
    ((busy <= OTHER_MAX)) && return 0
    if ((SECONDS >= deadline)); then
      log "WARNING: the machine is busy (${busy}% of a CPU used by other processes); numbers will be noisy"
      return 0
    fi
    echo "machine busy (${busy}% of a CPU used by other processes), waiting..."
  done
}
quiet_wait

log ""
[ "$MEMORY" = 1 ] && memory_figures fresh

# paired RUN FN KEY SCHEME FILE [ARGS...]: one run against each server, the order rotating from
# run to run so no server always goes first.
paired() {
  local run=$1 fn=$2 key=$3 scheme=$4 file=$5 n=${#servers[@]} i srv
  shift 5
  for ((i = 0; i < n; i++)); do
    srv=${servers[$(((i + run) % n))]}
    "$fn" "$key" "$srv" "$(server_url "$srv" "$scheme" "$file")" "$@"
  done
}

log "1 KB file, wrk, HTTP/1.1"
for ((run = 1; run <= RUNS; run++)); do paired "$run" wrk_once http_1k http 1k.bin; done
log "1 KB file, wrk, HTTPS/1.1"
for ((run = 1; run <= RUNS; run++)); do paired "$run" wrk_once https_1k https 1k.bin; done
if [ "$H2LOAD" = 1 ]; then
  log "1 KB file, h2load HTTP/2 (-m10)"
  for ((run = 1; run <= RUNS; run++)); do paired "$run" h2load_once h2_1k https 1k.bin; done
fi

log "$BIG_SIZE file, curl (page cache warm)"
cat "$tmp/tree/big.bin" >/dev/null
find "$tmp"/data* -type f -size +1M -exec cat {} + >/dev/null
for ((run = 1; run <= BIG_RUNS; run++)); do
  paired "$run" curl_once big_http http big.bin
  paired "$run" curl_once big_h1 https big.bin --http1.1
  paired "$run" curl_once big_h2 https big.bin --http2
done

log ""
[ "$MEMORY" = 1 ] && memory_figures after-load

# ---- summary -------------------------------------------------------------------------------

summary=$tmp/summary.txt
met=0 total=0
# median VALUES...: the median of the positive values ("-" if none).
median() {
  printf '%s\n' "$@" | awk '$1 > 0' | sort -g | awk '{ v[NR] = $1 } END {
    if (NR == 0) { print "-"; exit }
    m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
    f = (m >= 100) ? "%.0f\n" : "%.3g\n"; printf f, m }'
}
# ratios KEY A B: run i of A over run i of B (measured back to back), for every run both did.
ratios() {
  awk -v a="${series[$1.$2]:-}" -v b="${series[$1.$3]:-}" 'BEGIN {
    n = split(a, as, " "); m = split(b, bs, " ")
    for (i = 1; i <= n && i <= m; i++) if (as[i] > 0 && bs[i] > 0) printf "%.2f ", as[i] / bs[i] }'
}
# row KEY LABEL TARGET: MET/MISS when TARGET is a ratio, "info" when it is "-".
row() {
  local key=$1 label=$2 target=$3 srv r med verdict line
  local -a rs
  read -r -a rs <<<"$(ratios "$key" mirrorbox nginx)"
  med=$(median "${rs[@]}")
  if [ "$target" = - ]; then
    verdict=info
  elif ((${#rs[@]} < 5)); then
    verdict="MISS (fewer than 5 good runs)"
    total=$((total + 1))
  else
    verdict=$(awk -v m="$med" -v t="$target" 'BEGIN { print (m + 0 >= t) ? "MET" : "MISS" }')
    total=$((total + 1))
    [ "$verdict" = MET ] && met=$((met + 1))
  fi
  printf '%-44s %10s %10s %7s %7s  %s\n' "$label" "$(median ${series[$key.nginx]:-})" \
    "$(median ${series[$key.mirrorbox]:-})" "${med}x" "$([ "$target" = - ] && echo - || echo ">= ${target}x")" "$verdict" >>"$summary"
  printf '%-44s per-run mirrorbox/nginx: %s\n' "" "${rs[*]:-none}" >>"$summary"
  line="server CPU per $( [[ $key == big_* ]] && echo "GiB (ms)" || echo "request (us)"):"
  for srv in "${servers[@]}"; do line+=" $srv $(median ${cpu[$key.$srv]:-})"; done
  printf '%-44s %s\n' "" "$line" >>"$summary"
  if [ -n "$BASELINE_BIN" ]; then
    read -r -a rs <<<"$(ratios "$key" baseline nginx)"
    printf '%-44s baseline %s, paired baseline/nginx %sx; per-run mirrorbox/baseline: %s\n' "" \
      "$(median ${series[$key.baseline]:-})" "$(median "${rs[@]}")" "$(ratios "$key" mirrorbox baseline)" >>"$summary"
  fi
}
# mem_row LABEL KEY SERVER TARGET_MB KIND: KIND total (RSS held < TARGET), added (RSS added <
# TARGET and back down after close), info.
mem_row() {
  local label=$1 key=$2 srv=$3 target=$4 kind=$5 b d a verdict=info tgt=-
  b=${result[$key.$srv.before]:-} d=${result[$key.$srv.during]:-} a=${result[$key.$srv.after]:-}
  if [ -z "$d" ]; then
    printf '%-44s %s\n' "$label" "not measured (see above)" >>"$summary"
    [ "$kind" = info ] || total=$((total + 1))
    return
  fi
  case $kind in
    total)
      tgt="< $target MB"
      verdict=$(awk -v d="$d" -v t="$target" 'BEGIN { print (d / 1024 < t) ? "MET" : "MISS" }') ;;
    added)
      tgt="< $target MB added"
      # Back down: after closing, at most 5 MB (or a fifth of what was added) above the start.
      verdict=$(awk -v b="$b" -v d="$d" -v a="$a" -v t="$target" 'BEGIN {
        add = (d - b) / 1024; left = (a - b) / 1024; slack = (add / 5 > 5) ? add / 5 : 5
        print (add < t && left <= slack) ? "MET" : "MISS" }') ;;
  esac
  if [ "$kind" != info ]; then
    total=$((total + 1))
    [ "$verdict" = MET ] && met=$((met + 1))
  fi
  printf '%-44s %s MB before, %s held (+%s), %s after close  %s  %s\n' "$label" "$(mb_of "$b")" \
    "$(mb_of "$d")" "$(mb_of $((d - b)))" "$(mb_of "$a")" "$tgt" "$verdict" >>"$summary"
}
{
  echo "medians of the runs; ratio: the median of the per-run (paired) ratios, which decides"
  printf '%-44s %10s %10s %7s %7s  %s\n' metric nginx mirrorbox paired target result
} >"$summary"
row http_1k "1 KB GET, HTTP/1.1 keep-alive, wrk (req/s)" 1.1
row https_1k "1 KB GET, HTTPS/1.1 keep-alive, wrk (req/s)" 1.1
[ "$H2LOAD" = 1 ] && row h2_1k "1 KB GET, HTTP/2 -m10, h2load (req/s)" -
row big_http "$BIG_SIZE GET, plain HTTP, curl (MB/s)" 1.0
row big_h1 "$BIG_SIZE GET, HTTPS HTTP/1.1, curl (MB/s)" 1.0
row big_h2 "$BIG_SIZE GET, HTTPS HTTP/2, curl (MB/s)" -
if [ "$MEMORY" = 1 ]; then
  for srv in "${mirrorboxes[@]}"; do
    echo "memory, $srv:" >>"$summary"
    mem_row "  RSS, $IDLE_CONNS idle HTTP conns" idle_http_fresh "$srv" "$RSS_TARGET_MB" total
    mem_row "  RSS, $IDLE_CONNS idle HTTPS conns" idle_https "$srv" - info
    mem_row "  RSS, $IDLE_CONNS idle HTTP conns, after load" idle_http_after-load "$srv" - info
    for phase in fresh after-load; do
      if [ -f "$here/h2_stall.py" ]; then
        mem_row "  RSS, h2 ${H2_STALL_CONNS}x$H2_STALL_STREAMS stalled ($phase)" "h2_stall_$phase" "$srv" "$H2_STALL_TARGET_MB" added
      else
        printf '%-44s %s\n' "  RSS, h2 stalled streams ($phase)" "skipped: script missing" >>"$summary"
      fi
      if [ -f "$here/slow_readers.py" ]; then
        mem_row "  RSS, $SLOW_READERS slow readers ($phase)" "slow_$phase" "$srv" - info
        b=${result[slow_$phase.$srv.before]:-} d=${result[slow_$phase.$srv.during]:-}
        [ -z "$d" ] || printf '%-44s %s KB per connection (bound %s KB)\n' "" \
          "$(awk -v b="$b" -v d="$d" -v n="$SLOW_READERS" 'BEGIN { printf "%.0f", (d - b) / n }')" "$SLOW_BOUND_KB" >>"$summary"
      else
        printf '%-44s %s\n' "  RSS, slow readers ($phase)" "skipped: script missing" >>"$summary"
      fi
    done
  done
  echo "nginx, $IDLE_CONNS idle HTTP conns: $(mb_of "${result[idle_http_fresh.nginx.during]:-0}") MB (sum of workers)" >>"$summary"
fi
echo "$met of $total targets met" >>"$summary"
if ((disturbed)); then
  echo "$disturbed runs were DISTURBED by other processes (the paired median resists a few; with many, rerun on an idle machine; the CPU per request is the steadier figure)" >>"$summary"
fi

echo
cat "$summary"
mkdir -p "$here/out"
report=$here/out/serve-$(date +%Y%m%d-%H%M%S).txt
{
  echo "benches/serve.sh, $(date -Is)"
  cat "$details"
  echo
  cat "$summary"
} >"$report"
echo "written to benches/out/$(basename "$report")"
