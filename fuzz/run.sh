#!/usr/bin/env bash
# Runs every fuzz target of lockgate-bundle for SECONDS each (default 60), one after the
# other, each in one process (one core; libFuzzer's default, the same as -jobs=1 without
# moving the output to fuzz-0.log). Exits non-zero when any target crashed, panicked,
# timed out or ran out of memory; the failing input is under fuzz/artifacts/<target>/.
#
#   fuzz/run.sh [SECONDS] [TARGET...]     e.g. fuzz/run.sh 240, fuzz/run.sh 30 zip
#
# Nightly: cargo fuzz passes nightly-only flags to rustc (-Zsanitizer=address, the
# sanitizer-coverage passes). This machine has one stable toolchain and no nightly can be
# fetched, so RUSTC_BOOTSTRAP=1 lets the stable compiler accept them. It is set here only,
# for this script's cargo; never in the workspace's own builds.
#
# The committed seeds are corpus/<target>/ (regenerate them with
# `cargo run --example seed_corpus` from fuzz/); what libFuzzer finds while running goes to
# work/corpus/<target>/ (ignored by git), and later runs start from both. Logs are in
# work/logs/<target>.log.
set -euo pipefail

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(manifest model zip)
fi
case "$seconds" in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS] [TARGET...]" >&2
    exit 2
    ;;
esac

cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz from crates.io" >&2
    cargo install --locked cargo-fuzz
fi

# Release with debug assertions and overflow checks, under AddressSanitizer.
build_flags=(-O --debug-assertions)
cargo fuzz build "${build_flags[@]}"

mkdir -p work/logs
failed=()
for target in "${targets[@]}"; do
    mkdir -p "work/corpus/$target" "corpus/$target"
    log="work/logs/$target.log"
    echo "== $target: ${seconds}s (log: fuzz/$log)"
    status=0
    cargo fuzz run "${build_flags[@]}" "$target" "work/corpus/$target" "corpus/$target" -- \
        -max_total_time="$seconds" \
        -timeout=30 \
        -rss_limit_mb=2048 \
        -dict="dict/$target.dict" \
        -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    # The last status line and the final statistics.
    grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$log" | tail -n 1 || true
    grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log" || true
    if [ "$status" -ne 0 ]; then
        echo "!! $target failed (exit $status): see fuzz/$log and fuzz/artifacts/$target/" >&2
        grep -E -m 20 'panicked|ERROR: |SUMMARY|Test unit written|Failing input' "$log" >&2 || true
        failed+=("$target")
    fi
done

if [ ${#failed[@]} -ne 0 ]; then
    echo "failed: ${failed[*]}" >&2
    exit 1
fi
echo "no crash in: ${targets[*]}"
