#!/usr/bin/env bash
# Runs the whole test suite against real RabbitMQ and Redis (brought up by setup.sh):
# formatting, clippy with warnings denied, then every unit and integration test of every crate of
# the workspace (the guest component and the extraction benchmark included), then a smoke
# run of each fuzz target of the extractor core (scripts/fuzz.sh, ~20 s each plus its build).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# The identity test compares the component with the native core; the riptide crate's build
# script has built that component already (clippy above ran it), so no second build.
export RIPTIDE_EXTRACTOR_WASM="${RIPTIDE_EXTRACTOR_WASM:-$CARGO_TARGET_DIR/riptide-guest/wasm32-wasip2/wasm/riptide_extractor_guest.wasm}"
cargo test --workspace --all-targets --no-fail-fast
bash scripts/fuzz.sh
