#!/usr/bin/env bash
# The dashboard in a real browser: installs what is missing, starts `lockgate demo` on a
# free port in a temporary folder, walks the pages with dashboard.mjs (screenshots in
# target/e2e/), and stops the server whatever happens.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

bash e2e/install.sh
cargo build -q -p lockgate-cli
bin="$root/target/debug/lockgate"
out="$root/target/e2e"
rm -rf "$out"
mkdir -p "$out"

tmp="$(mktemp -d)"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# The server runs in the temporary folder, so no lockgate.toml of the caller's is read.
(cd "$tmp" && exec "$bin" demo --dir "$tmp/demo" --bind "127.0.0.1:$port") >"$out/server.log" 2>&1 &
server=$!
for _ in $(seq 1 100); do
  curl -fs -o /dev/null "http://127.0.0.1:$port/" && break
  kill -0 "$server" 2>/dev/null || { cat "$out/server.log"; echo "e2e: the server did not start"; exit 1; }
  sleep 0.2
done

BASE="http://127.0.0.1:$port" DEMO_DIR="$tmp/demo" LOCKGATE="$bin" OUT="$out" \
  node e2e/dashboard.mjs
