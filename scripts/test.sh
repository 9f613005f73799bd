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
cargo test --workspace --all-targets
bash scripts/fuzz.sh
