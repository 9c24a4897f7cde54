#!/usr/bin/env bash
# N retab-mcp replicas behind nginx, sharing one poller per run through Redis. On one host, loopback only:
#
#   RETAB_MCP_REDIS_URL=redis://127.0.0.1:6379/0 RETAB_MCP_PARTITION_SECRET=... deploy/run-replicas.sh 3 8000
#
# Starts replicas on ports 8101..810N (--stateless, streamable HTTP), renders deploy/nginx.conf.template
# into $RUN_DIR (default: a new temporary directory) and runs nginx in the foreground on 127.0.0.1:PORT.
# Every RETAB_* variable in the environment reaches every replica (deploy/environment.md lists them).
# Ctrl-C stops nginx and the replicas.
set -euo pipefail
cd "$(dirname "$0")/.."

replicas="${1:-3}"
port="${2:-8000}"
: "${RETAB_MCP_REDIS_URL:?set RETAB_MCP_REDIS_URL, e.g. redis://127.0.0.1:6379/0}"
: "${RETAB_MCP_PARTITION_SECRET:?set RETAB_MCP_PARTITION_SECRET to the same long random secret for every replica}"
run_dir="${RUN_DIR:-$(mktemp -d)}"
mkdir -p "$run_dir"

pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT INT TERM

upstreams=""
routes=""
for i in $(seq 1 "$replicas"); do
  replica_port=$((8100 + i))
  RETAB_MCP_REPLICA_ID="replica-$i" uv run --frozen retab-mcp --transport http --stateless \
    --host 127.0.0.1 --port "$replica_port" 2>"$run_dir/replica-$i.log" &
  pids+=("$!")
  upstreams+="        server 127.0.0.1:${replica_port} max_fails=1 fail_timeout=2s;"$'\n'
  routes+="        \"~^replica-$i[.]\" 127.0.0.1:${replica_port};"$'\n'
done

sed -e "s|@PREFIX@|$run_dir|g" -e "s|@LISTEN@|127.0.0.1:$port|g" deploy/nginx.conf.template \
  | awk -v upstreams="$upstreams" -v routes="$routes" \
      '{ if ($0 == "@UPSTREAMS@") printf "%s", upstreams; else if ($0 == "@ROUTES@") printf "%s", routes; else print }' \
  > "$run_dir/nginx.conf"
echo "nginx on http://127.0.0.1:$port/mcp -> $replicas replicas (logs in $run_dir)" >&2
nginx -c "$run_dir/nginx.conf" -p "$run_dir" &
pids+=("$!")
wait -n
