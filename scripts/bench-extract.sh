#!/usr/bin/env bash
# Extraction benchmark in one command: builds the WASM extractor component and the bench harness,
# then, for the native core and the component side by side, on two corpora beside the repository:
# AEB articles (../shared/bench/aeb: F1 / precision / strict precision / recall via score.py) and
# the WCXB development pages (../shared/bench/wcxb: F1 per page kind, empty outputs, title
# agreement via score_wcxb.py, author and date agreement), pages per CPU-second, guest memory per
# call, WASM/native identity counts, and hostile-input timings. WCXB figures are in-sample (the
# rules were developed on these pages). Extra arguments go to the harness (--passes N, --data DIR,
# --wcxb DIR, --no-wcxb, --out DIR, --native-only).
# Run from the repository root; needs `rustup target add wasm32-wasip2` and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --profile wasm --target wasm32-wasip2 -p riptide-extractor-guest
cargo run --quiet --release -p riptide-extractor-bench -- "$@"
