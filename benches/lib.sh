# Shared by the benchmark scripts (sourced, not run).

# Sets MIRRORBOX_BIN: the given one, else the release build of the repo at $1 (built first
# unless SKIP_BUILD=1). Sets custom_bin when the caller named a binary.
mirrorbox_binary() {
  local root=$1 target_dir
  custom_bin=${MIRRORBOX_BIN:-}
  if [ -z "${MIRRORBOX_BIN:-}" ]; then
    target_dir=${CARGO_TARGET_DIR:-$root/target}
    case $target_dir in /*) ;; *) target_dir=$root/$target_dir ;; esac
    MIRRORBOX_BIN=$target_dir/release/mirrorbox
    if [ "${SKIP_BUILD:-0}" != 1 ]; then
      echo "building mirrorbox (release)..."
      (cd "$root" && cargo build --release --quiet --bin mirrorbox)
    fi
  fi
  if [ ! -x "$MIRRORBOX_BIN" ]; then
    echo "no mirrorbox binary at $MIRRORBOX_BIN" >&2
    exit 1
  fi
}
