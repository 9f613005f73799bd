#!/usr/bin/env bash
# Shared build settings of the scripts: one target directory outside the clone, so CI and
# every checkout on a machine reuse one build instead of starting cold (wasmtime and
# friends take minutes to compile on two cores).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/riptide-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# No incremental caches: CI builds once per run, and the caches of many test binaries filled
# the disk of a shared target dir (17 GB seen).
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
