#!/usr/bin/env bash
# The main job end to end: bring up RabbitMQ and Redis, build riptide, declare the topology,
# serve the bundled sample site on loopback, enqueue its pages, run a worker until the queue
# is drained, and print the results.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
bash scripts/setup.sh
cargo build --quiet --bin riptide
riptide="$CARGO_TARGET_DIR/debug/riptide"
# The sample site is on loopback, which the worker refuses by default (SSRF guard).
export RIPTIDE_ALLOW_PRIVATE_NETWORKS=true
# Pacing off: the sample site is one loopback origin serving every page, and the shipped
# default (one request a second per origin, for the open web) would only make this slow.
export RIPTIDE_POLITENESS__DEFAULT_DELAY_MS=0

"$riptide" migrate
port=$(( 20000 + RANDOM % 20000 ))
"$riptide" sample-site --addr "127.0.0.1:$port" --pages 12 >/dev/null &
site=$!
trap 'kill $site 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.1; done

# Twelve articles, one page that does not exist (it ends in the dead-letter queue), and
# one URL the producer refuses outright.
{
  for n in $(seq 0 11); do echo "http://127.0.0.1:$port/articles/$n"; done
  echo "http://127.0.0.1:$port/articles/404"
  echo "file:///etc/passwd"
} > "${TMPDIR:-/tmp}/riptide-quickstart-urls.txt"
"$riptide" enqueue --file "${TMPDIR:-/tmp}/riptide-quickstart-urls.txt" || true

"$riptide" worker --drain
echo "--- results (riptide results --brief; without --brief: one JSON object per result) ---"
"$riptide" results --brief
