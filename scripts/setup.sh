#!/usr/bin/env bash
# Brings up what riptide needs on a Debian machine, idempotently: RabbitMQ, Redis and
# Chromium from Debian's packages, the wasm32-wasip2 Rust target, and the two services
# running on 127.0.0.1 (RabbitMQ guest/guest on 5672, Redis on 6379).
# Sourced by quickstart.sh and test.sh; safe to run again at any time.
set -euo pipefail

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v rabbitmq-server >/dev/null 2>&1 || missing+=(rabbitmq-server)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-cli >/dev/null 2>&1 || missing+=(redis-tools)
[ -x /usr/bin/chromium ] || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed | grep -qx wasm32-wasip2; then
  rustup target add wasm32-wasip2
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "setup: starting redis-server" >&2
  as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null
  for _ in $(seq 1 50); do redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

rabbit_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }
if ! rabbit_up; then
  echo "setup: starting rabbitmq-server" >&2
  # RabbitMQ inherits this limit; the default 1024 leaves it ~800 sockets.
  ulimit -n 65536 2>/dev/null || true
  as_root rabbitmq-server -detached
  as_root rabbitmqctl await_startup >/dev/null
fi
for _ in $(seq 1 100); do rabbit_up && break; sleep 0.1; done
rabbit_up || { echo "setup: RabbitMQ did not come up on 127.0.0.1:5672" >&2; exit 1; }
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null || { echo "setup: Redis did not come up on 127.0.0.1:6379" >&2; exit 1; }
