#!/usr/bin/env bash
# Runs the official MCP conformance suite against `retab-mcp --demo --transport http` on a loopback port
# the system chooses, with the baseline in conformance-baseline.yml. Needs `npm ci` done in this folder
# (it brings Node 22, which the suite requires, as the `node` package) and the project's Python environment.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
python="${RETAB_MCP_PYTHON:-python}"
log="$(mktemp)"
# Port 0: the server binds a port the system chooses and names it in its ready line.
"$python" -m retab_mcp --demo --transport http --port 0 2>"$log" &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -f "$log"' EXIT
for _ in $(seq 1 300); do
  grep -q "serving on http://" "$log" && break
  kill -0 "$server" 2>/dev/null || { cat "$log"; echo "conformance: the server exited before listening" >&2; exit 1; }
  sleep 0.1
done
grep -q "serving on http://" "$log" || { cat "$log"; echo "conformance: the server did not listen within 30 s" >&2; exit 1; }
port="$(sed -n 's|.*serving on http://[^/ ]*:\([0-9]*\)/.*|\1|p' "$log" | head -n 1)"
out="$(mktemp -d)"
status=0
"$here/node_modules/.bin/node" "$here/node_modules/@modelcontextprotocol/conformance/dist/index.js" server \
  --url "http://127.0.0.1:$port/mcp" --expected-failures "$here/conformance-baseline.yml" -o "$out" \
  >"$out/run.txt" 2>&1 || status=$?
sed -n '/=== SUMMARY ===/,$p' "$out/run.txt"
if [ "$status" -ne 0 ]; then
  cat "$out/run.txt"
  echo "conformance: FAILED (exit $status); results in $out" >&2
  exit "$status"
fi
echo "conformance: every scenario passed or is a listed fixture scenario"
