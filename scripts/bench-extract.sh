#!/usr/bin/env bash
# Extraction benchmark in one command: builds the WASM extractor component and the bench harness,
# then prints F1 / precision / strict precision / recall (via ../shared/bench/score.py) and pages
# per CPU-second for the native core and the component, in one run, plus guest memory per call
# and hostile-input timings. Extra arguments go to the harness (--passes N, --data DIR, --out DIR).
# Run from the repository root; needs `rustup target add wasm32-wasip2` and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --profile wasm --target wasm32-wasip2 -p riptide-extractor-guest
cargo run --quiet --release -p riptide-extractor-bench -- "$@"
