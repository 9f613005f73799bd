#!/usr/bin/env bash
# Runs the whole test suite against real RabbitMQ and Redis (brought up by setup.sh):
# formatting, clippy with warnings denied, then every unit and integration test of every crate of
# the workspace (the guest component and the extraction benchmark included), then a smoke
# run of each fuzz target of the extractor core (scripts/fuzz.sh, ~20 s each plus its build).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh
# Test namespaces (`t-` + 12 hex) left on the broker by a run that was killed: each holds two
# dozen quorum queues, and hundreds of them slow every later run. Deleted in one broker call.
if command -v rabbitmqctl >/dev/null 2>&1; then
  rabbitmqctl -q eval '
    Stale = [Q || Q <- rabbit_amqqueue:list(<<"/">>),
                  re:run(element(4, amqqueue:get_name(Q)), "^t-[0-9a-f]{12}\\.") =/= nomatch],
    [rabbit_amqqueue:delete(Q, false, false, <<"riptide-test-sweep">>) || Q <- Stale],
    length(Stale).' 2>/dev/null | sed 's/^/test: removed leftover test queues: /' || true
fi
cargo fmt --all --check
cargo clippy --workspace --all-targets -- -D warnings
# The identity test compares the component with the native core; the riptide crate's build
# script has built that component already (clippy above ran it), so no second build.
export RIPTIDE_EXTRACTOR_WASM="${RIPTIDE_EXTRACTOR_WASM:-$CARGO_TARGET_DIR/riptide-guest/wasm32-wasip2/wasm/riptide_extractor_guest.wasm}"
cargo test --workspace --all-targets --no-fail-fast
bash scripts/fuzz.sh
