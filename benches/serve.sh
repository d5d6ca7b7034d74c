#!/usr/bin/env bash
# Serving benchmark: nginx (Debian nginx-light) and mirrorbox serve the same tree in one run,
# one after the other with the same clients, and the ratios are printed against the targets:
#
#   1 KB file, req/s with wrk, HTTP and HTTPS keep-alive ........ >= 1.0x nginx
#   1 GiB file, curl, HTTPS HTTP/1.1 and HTTP/2 .................. >= 1.0x nginx
#   1 GiB file, curl, plain HTTP ................................. >= 0.9x nginx
#   RSS with 1,000 idle keep-alive connections .................. < 64 MB
#
# A benchmark, not a test: nothing runs it but a person.  Usage, from anywhere:
#
#   bash benches/serve.sh
#
# The machine should be otherwise idle: every run also reports the CPU used by other processes
# and is flagged DISTURBED above OTHER_MAX percent (default 10); before measuring, the script
# waits up to QUIET_WAIT seconds (default 300) for the machine to calm down.  Runs alternate
# between the servers and the best of each is kept, which filters out most disturbances.
#
# Knobs (environment): DURATION (wrk/h2load duration, default 10s), RUNS (wrk runs per server,
# best kept, default 3), WRK_THREADS (1), WRK_CONNS (50), BIG_SIZE (head -c size, default 1G),
# BIG_RUNS (curl runs per server and protocol, best kept, default 5), IDLE_CONNS (1000),
# H2LOAD (1 = also run h2load over HTTP/2, informational), SKIP_BUILD (1 = use the existing
# binary), MIRRORBOX_BIN (binary to run), KEEP_TMP (1 = keep the temp dir), the ports
# MB_HTTP_PORT MB_HTTPS_PORT NGX_HTTP_PORT NGX_HTTPS_PORT.
#
# The summary also goes to benches/out/serve-<date>.txt (git-ignored).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)

DURATION=${DURATION:-10s}
RUNS=${RUNS:-3}
WRK_THREADS=${WRK_THREADS:-1}
WRK_CONNS=${WRK_CONNS:-50}
BIG_SIZE=${BIG_SIZE:-1G}
BIG_RUNS=${BIG_RUNS:-5}
IDLE_CONNS=${IDLE_CONNS:-1000}
H2LOAD=${H2LOAD:-1}
MB_HTTP_PORT=${MB_HTTP_PORT:-18080}
MB_HTTPS_PORT=${MB_HTTPS_PORT:-18443}
NGX_HTTP_PORT=${NGX_HTTP_PORT:-18081}
NGX_HTTPS_PORT=${NGX_HTTPS_PORT:-18444}
OTHER_MAX=${OTHER_MAX:-10}
QUIET_WAIT=${QUIET_WAIT:-300}
RSS_TARGET_MB=64

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

for port in "$MB_HTTP_PORT" "$MB_HTTPS_PORT" "$NGX_HTTP_PORT" "$NGX_HTTPS_PORT"; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    die "port $port is already in use (set the *_PORT variables)"
  fi
done

# ---- start both servers --------------------------------------------------------------------

nginx -t -q -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" || die "nginx rejects the config"
nginx -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" 2>>"$tmp/nginx/error.log" &
nginx_pid=$!
pids+=("$nginx_pid")

(cd "$tmp" && exec "$MIRRORBOX_BIN" serve --config "$tmp/mirrorbox.toml" 2>"$tmp/mirrorbox.log") &
mb_pid=$!
pids+=("$mb_pid")

echo "waiting for mirrorbox to ingest the tree..."
deadline=$((SECONDS + 600))
until grep -q "sync finished" "$tmp/mirrorbox.log" 2>/dev/null; do
  kill -0 "$mb_pid" 2>/dev/null || { cat "$tmp/mirrorbox.log" >&2; die "mirrorbox exited"; }
  ((SECONDS < deadline)) || die "mirrorbox did not finish its first sync"
  sleep 0.2
done
for url in "http://127.0.0.1:$MB_HTTP_PORT/files/1k.bin" "http://127.0.0.1:$NGX_HTTP_PORT/files/1k.bin"; do
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

# Both must serve the same bytes, over every protocol.
for srv in "nginx $NGX_HTTP_PORT $NGX_HTTPS_PORT" "mirrorbox $MB_HTTP_PORT $MB_HTTPS_PORT"; do
  set -- $srv
  for f in 1k.bin; do
    cmp -s "$tmp/tree/$f" <(curl -sf "http://127.0.0.1:$2/files/$f") || die "$1 serves wrong bytes over HTTP"
    cmp -s "$tmp/tree/$f" <(curl -sfk --http1.1 "https://127.0.0.1:$3/files/$f") || die "$1 serves wrong bytes over HTTPS/1.1"
    cmp -s "$tmp/tree/$f" <(curl -sfk --http2 "https://127.0.0.1:$3/files/$f") || die "$1 serves wrong bytes over HTTP/2"
  done
done

links=$(stat -c %h "$tmp/tree/big.bin")
tls_mb=$(echo | openssl s_client -connect "127.0.0.1:$MB_HTTPS_PORT" -alpn http/1.1 2>/dev/null | grep -m1 -E '^New,' || true)
tls_ngx=$(echo | openssl s_client -connect "127.0.0.1:$NGX_HTTPS_PORT" -alpn http/1.1 2>/dev/null | grep -m1 -E '^New,' || true)
log "machine: $(nproc) CPUs, $(uname -sr), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
log "nginx: $(nginx -v 2>&1 | sed 's/.*: //'), ${#ngx_workers[@]} workers; mirrorbox: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$root" diff --quiet HEAD -- src 2>/dev/null || echo ' (src modified)')${custom_bin:+ BUT running MIRRORBOX_BIN=$custom_bin}"
log "TLS nginx: ${tls_ngx:-?}"
log "TLS mirrorbox: ${tls_mb:-?}"
log "big file: $big_bytes bytes, link count $links (2 = mirrorbox serves the same inode as nginx)"
log "wrk: -t$WRK_THREADS -c$WRK_CONNS -d$DURATION, best of $RUNS; curl: best of $BIG_RUNS"

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
# Sets m_server (server CPU %) and m_other (CPU % of everything but the servers and the client).
mark_end() {
  local t1 c1 h1 k1
  t1=$(now); c1=$(cpu_ticks "$@"); h1=$(host_ticks); client_secs k1
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
max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a + 0 > b + 0) ? a : b }'; }

server_pids() { if [ "$1" = nginx ]; then echo "${ngx_workers[@]}"; else echo "$mb_pid"; fi; }

declare -A result series
# record KEY SERVER VALUE: keeps the best value, and every value for the paired ratios.
record() {
  result[$1.$2]=$(max "${result[$1.$2]:-0}" "$3")
  series[$1.$2]+="$3 "
}
# wrk_best KEY SERVER URL: best req/s of RUNS wrk runs -> result[KEY.SERVER]
wrk_once() {
  local key=$1 server=$2 url=$3 out rps errs p99
  local -a sp
  read -r -a sp <<<"$(server_pids "$server")"
  mark_start "${sp[@]}"
  out=$(wrk -t"$WRK_THREADS" -c"$WRK_CONNS" -d"$DURATION" --latency "$url")
  mark_end "${sp[@]}"
  rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
  p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
  errs=$(grep -E 'Socket errors|Non-2xx' <<<"$out" | tr -s ' ' | paste -sd';' || true)
  log "  $key $server: ${rps:-0} req/s, p99 ${p99:-?}, $m_note${errs:+, $errs}"
  [ -z "$errs" ] || rps=0 # errors make a run worthless
  record "$key" "$server" "${rps:-0}"
}

h2load_once() {
  local key=$1 server=$2 url=$3 out rps failed
  local -a sp
  read -r -a sp <<<"$(server_pids "$server")"
  mark_start "${sp[@]}"
  out=$(h2load -t"$WRK_THREADS" -c"$WRK_CONNS" -m10 -D"${DURATION%s}" --warm-up-time=1 "$url" 2>&1)
  mark_end "${sp[@]}"
  rps=$(awk '/^finished in/ {gsub(",", ""); print $4}' <<<"$out")
  failed=$(awk '/^requests:/ {print $10}' <<<"$out")
  log "  $key $server: ${rps:-0} req/s, failed ${failed:-?}, $m_note"
  [ "${failed:-1}" = 0 ] || rps=0
  record "$key" "$server" "${rps:-0}"
}

curl_once() {
  local key=$1 server=$2 url=$3 out code size speed ver
  shift 3
  local -a sp
  read -r -a sp <<<"$(server_pids "$server")"
  mark_start "${sp[@]}"
  out=$(curl -sk -o /dev/null "$@" -w '%{http_code} %{size_download} %{speed_download} %{http_version}' "$url" || true)
  mark_end "${sp[@]}"
  read -r code size speed ver <<<"$out"
  if [ "$code" != 200 ] || [ "$size" != "$big_bytes" ]; then
    log "  $key $server: FAILED (status ${code:-?}, $size of $big_bytes bytes)"
    speed=0
  else
    log "  $key $server: $(awk -v s="$speed" 'BEGIN { printf "%.0f", s / 1e6 }') MB/s (HTTP/$ver), $m_note"
  fi
  record "$key" "$server" "$(awk -v s="$speed" 'BEGIN { printf "%.1f", s / 1e6 }')"
}

# idle_rss KEY SERVER PORT [--tls]: RSS with IDLE_CONNS idle keep-alive connections, in MB.
idle_rss() {
  local key=$1 server=$2 port=$3 tls=${4:-} before after holder open
  local -a sp
  read -r -a sp <<<"$(server_pids "$server")"
  before=$(rss_kb "${sp[@]}")
  python3 "$here/idle_conns.py" 127.0.0.1 "$port" /files/1k.bin "$IDLE_CONNS" $tls >"$tmp/idle.out" 2>"$tmp/idle.err" &
  holder=$!
  pids+=("$holder")
  local deadline=$((SECONDS + 180))
  until grep -qs '^ready' "$tmp/idle.out"; do
    if ! kill -0 "$holder" 2>/dev/null || ((SECONDS > deadline)); then
      cat "$tmp/idle.err" >&2
      die "could not open $IDLE_CONNS connections to $server"
    fi
    sleep 0.2
  done
  sleep 2
  open=$(ss -Htn state established "( sport = :$port )" 2>/dev/null | wc -l)
  after=$(rss_kb "${sp[@]}")
  kill "$holder" 2>/dev/null || true
  wait "$holder" 2>/dev/null || true
  log "  $key $server: $(awk -v k="$before" 'BEGIN { printf "%.1f", k / 1024 }') MB before, $(awk -v k="$after" 'BEGIN { printf "%.1f", k / 1024 }') MB with $open connections open"
  result[$key.$server]=$(awk -v k="$after" 'BEGIN { printf "%.1f", k / 1024 }')
  sleep 1
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
log "RSS with $IDLE_CONNS idle keep-alive connections, fresh servers (nginx: sum of workers)"
idle_rss rss_http nginx "$NGX_HTTP_PORT"
idle_rss rss_http mirrorbox "$MB_HTTP_PORT"
idle_rss rss_https nginx "$NGX_HTTPS_PORT" --tls
idle_rss rss_https mirrorbox "$MB_HTTPS_PORT" --tls

# pair RUN FN KEY NGINX_URL MIRRORBOX_URL [ARGS...]: one run against each server, the order
# alternating from run to run so neither always goes first.
pair() {
  local run=$1 fn=$2 key=$3 nurl=$4 murl=$5
  shift 5
  if ((run % 2)); then
    "$fn" "$key" nginx "$nurl" "$@"
    "$fn" "$key" mirrorbox "$murl" "$@"
  else
    "$fn" "$key" mirrorbox "$murl" "$@"
    "$fn" "$key" nginx "$nurl" "$@"
  fi
}
ngx=http://127.0.0.1:$NGX_HTTP_PORT/files mb=http://127.0.0.1:$MB_HTTP_PORT/files
ngxs=https://127.0.0.1:$NGX_HTTPS_PORT/files mbs=https://127.0.0.1:$MB_HTTPS_PORT/files

log "1 KB file, wrk"
for ((run = 1; run <= RUNS; run++)); do
  pair "$run" wrk_once http_1k "$ngx/1k.bin" "$mb/1k.bin"
done
for ((run = 1; run <= RUNS; run++)); do
  pair "$run" wrk_once https_1k "$ngxs/1k.bin" "$mbs/1k.bin"
done
if [ "$H2LOAD" = 1 ]; then
  log "1 KB file, h2load HTTP/2 (-m10)"
  for ((run = 1; run <= RUNS; run++)); do
    pair "$run" h2load_once h2_1k "$ngxs/1k.bin" "$mbs/1k.bin"
  done
fi

log "$BIG_SIZE file, curl (page cache warm)"
cat "$tmp/tree/big.bin" >/dev/null
find "$tmp/data" -type f -size +1M -exec cat {} + >/dev/null
for ((run = 1; run <= BIG_RUNS; run++)); do
  pair "$run" curl_once big_http "$ngx/big.bin" "$mb/big.bin"
  pair "$run" curl_once big_h1 "$ngxs/big.bin" "$mbs/big.bin" --http1.1
  pair "$run" curl_once big_h2 "$ngxs/big.bin" "$mbs/big.bin" --http2
done

log "RSS with $IDLE_CONNS idle keep-alive connections, after the load above"
idle_rss rss_http_after nginx "$NGX_HTTP_PORT"
idle_rss rss_http_after mirrorbox "$MB_HTTP_PORT"

# ---- summary -------------------------------------------------------------------------------

summary=$tmp/summary.txt
met=0 total=0
# The median of the per-run ratios (run i of mirrorbox against run i of nginx, measured one
# right after the other): less sensitive to one lucky run than the ratio of the bests.
paired_median() {
  awk -v n="${series[$1.nginx]:-}" -v m="${series[$1.mirrorbox]:-}" 'BEGIN {
    a = split(n, ns, " "); b = split(m, ms, " "); k = 0
    for (i = 1; i <= a && i <= b; i++) if (ns[i] > 0 && ms[i] > 0) r[++k] = ms[i] / ns[i]
    if (k < 2) { print "-"; exit }
    for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (r[j] < r[i]) { t = r[i]; r[i] = r[j]; r[j] = t }
    printf "%.2fx", (k % 2) ? r[(k + 1) / 2] : (r[k / 2] + r[k / 2 + 1]) / 2 }'
}
row() { # KEY LABEL KIND TARGET ; KIND: min (ratio >= TARGET), rss (mirrorbox < TARGET MB), info
  local key=$1 label=$2 kind=$3 target=$4 n m ratio verdict tgt med
  n=${result[$key.nginx]:-0} m=${result[$key.mirrorbox]:-0}
  ratio=$(awk -v n="$n" -v m="$m" 'BEGIN { if (n > 0) printf "%.2fx", m / n; else print "-" }')
  med=$(paired_median "$key")
  case $kind in
    min)
      tgt=">= ${target}x"
      verdict=$(awk -v n="$n" -v m="$m" -v t="$target" 'BEGIN { print (n > 0 && m / n >= t) ? "PASS" : "MISS" }') ;;
    rss)
      tgt="< $target MB"
      verdict=$(awk -v m="$m" -v t="$target" 'BEGIN { print (m > 0 && m < t) ? "PASS" : "MISS" }') ;;
    *) tgt="-"; verdict="info" ;;
  esac
  if [ "$verdict" != info ]; then
    total=$((total + 1))
    [ "$verdict" = PASS ] && met=$((met + 1))
  fi
  printf '%-46s %10s %10s %6s %7s %9s  %s\n' "$label" "$n" "$m" "$ratio" "$med" "$tgt" "$verdict" >>"$summary"
}
{
  echo "nginx/mirrorbox: best of the runs; ratio: of the bests (decides the result); paired: median"
  echo "of the per-run ratios (a check on noise)"
  printf '%-46s %10s %10s %6s %7s %9s  %s\n' metric nginx mirrorbox ratio paired target result
} >"$summary"
row http_1k "1 KB GET, HTTP/1.1 keep-alive, wrk (req/s)" min 1.0
row https_1k "1 KB GET, HTTPS/1.1 keep-alive, wrk (req/s)" min 1.0
[ "$H2LOAD" = 1 ] && row h2_1k "1 KB GET, HTTP/2 -m10, h2load (req/s)" info -
row big_http "$BIG_SIZE GET, plain HTTP, curl (MB/s)" min 0.9
row big_h1 "$BIG_SIZE GET, HTTPS HTTP/1.1, curl (MB/s)" min 1.0
row big_h2 "$BIG_SIZE GET, HTTPS HTTP/2, curl (MB/s)" min 1.0
row rss_http "RSS, $IDLE_CONNS idle HTTP conns (MB)" rss "$RSS_TARGET_MB"
row rss_https "RSS, $IDLE_CONNS idle HTTPS conns (MB)" info -
row rss_http_after "RSS, $IDLE_CONNS idle HTTP conns, after load (MB)" info -
echo "$met of $total targets met" >>"$summary"
if ((disturbed)); then
  echo "$disturbed runs were DISTURBED by other processes (best-of-N keeps the undisturbed ones; rerun on an idle machine to be sure)" >>"$summary"
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
