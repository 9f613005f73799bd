#!/usr/bin/env bash
# Coverage-guided fuzzing of the extractor core (libFuzzer through cargo-fuzz, on the stable
# toolchain: no sanitizer, so no -Z flag is needed; safe Rust gets no use from ASan anyway).
#
#   scripts/fuzz.sh                 smoke: each target for FUZZ_SMOKE_SECONDS (20), as CI runs it
#   scripts/fuzz.sh long SECONDS    each target for SECONDS, at nice 19
#
# FUZZ_TARGETS="html_bytes" picks targets (default: all). Prints, per target, the seconds run,
# the executions and the crashes (new files under extractor-component/core/fuzz/artifacts/<target>/;
# each is reproduced with `cargo fuzz run -s none -a <target> <file>` from extractor-component/core).
# A long run's corpus grows under /var/tmp/riptide-fuzz/corpus/<target>, seeded from the
# committed fuzz/corpus/html_bytes (a smoke run starts from the seeds alone); the build has its own target dir (instrumented code must not mix
# with the workspace's). Exits non-zero when a target crashed.
set -euo pipefail
cd "$(dirname "$0")/.."

mode="${1:-smoke}"
case "$mode" in
    # -timeout is wall time: a long run at nice 19 on a busy machine gets a fraction of a core,
    # so it allows more (a 256 KiB page takes ~0.2 s of CPU; a hang still trips it).
    smoke) seconds="${FUZZ_SMOKE_SECONDS:-20}"; nice=(); timeout=10 ;;
    long) seconds="${2:?usage: scripts/fuzz.sh long SECONDS}"; nice=(nice -n 19); timeout=30 ;;
    *) echo "usage: scripts/fuzz.sh [smoke | long SECONDS]" >&2; exit 2 ;;
esac

CARGO_FUZZ_VERSION=0.13.2
if ! cargo fuzz --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-/var/tmp/riptide-fuzz-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
work="${FUZZ_WORK_DIR:-/var/tmp/riptide-fuzz}"
targets="${FUZZ_TARGETS:-html_bytes html_tree}"
core=extractor-component/core

# Release build with debug assertions and overflow checks: an overflow is a crash here.
flags=(--sanitizer none --debug-assertions)
(cd "$core" && cargo fuzz build "${flags[@]}")

status=0
summary=()
for target in $targets; do
    # Structure-aware inputs are dense: 4 KiB of choices already renders pages of up to 256 KiB.
    max_len=65536
    [ "$target" = html_tree ] && max_len=4096
    # Smoke starts from the committed seeds only: replaying a grown corpus (thousands of inputs,
    # some of 256 KiB) took 40 s of a 20 s run. Long runs keep and grow theirs.
    corpus="$work/corpus/$target"
    if [ "$mode" = smoke ]; then
        corpus="$work/smoke-corpus/$target"
        rm -rf "$corpus"
    fi
    artifacts="$core/fuzz/artifacts/$target"
    log="$work/logs/$target-$mode.log"
    mkdir -p "$corpus" "$artifacts" "$work/logs"
    marker="$work/logs/$target.start"
    touch "$marker"
    start=$(date +%s)
    set +e
    (cd "$core" && "${nice[@]}" cargo fuzz run "${flags[@]}" "$target" "$corpus" fuzz/corpus/html_bytes -- \
        -max_total_time="$seconds" -max_len="$max_len" -timeout="$timeout" -rss_limit_mb=2048 \
        -print_final_stats=1) >"$log" 2>&1
    rc=$?
    set -e
    elapsed=$(($(date +%s) - start))
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    crashes=$(find "$artifacts" -type f -newer "$marker" | wc -l)
    corpus_size=$(find "$corpus" -type f | wc -l)
    line="fuzz $target: ${elapsed}s, ${execs:-?} executions, $crashes crashes, corpus $corpus_size inputs"
    summary+=("$line")
    echo "$line"
    if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
        status=1
        grep -E -A3 "panicked at|ERROR: libFuzzer|Test unit written" "$log" | head -20 || true
        echo "full log: $log"
    fi
done
printf '%s\n' "${summary[@]}"
exit "$status"
