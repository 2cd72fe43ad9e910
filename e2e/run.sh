#!/usr/bin/env bash
# The dashboard in a real browser: installs what is missing, starts `lockgate demo` on a
# free port in a temporary folder, walks the pages with dashboard.mjs (screenshots in
# target/e2e/), and stops the server whatever happens. Nothing is ever skipped: a
# missing tool fails the run, in CI (CI=true) and out of it.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

bash e2e/install.sh
# Debug build: a release build would compete with benchmarks for the target folder.
# CARGO_TARGET_DIR, when set, is where cargo puts the binary.
cargo build -q -p lockgate-cli
bin="${CARGO_TARGET_DIR:-$root/target}/debug/lockgate"
[ -x "$bin" ] || { echo "e2e: $bin was not built" >&2; exit 1; }
out="$root/target/e2e"
rm -rf "$out"
mkdir -p "$out"

tmp="$(mktemp -d)"
# node is there anyway (install.sh); no need for python3 or curl as well.
port="$(node -e 'const s = require("net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); })')"
server=""
# Keeps the test's exit status: a killed server's `wait` status must not replace it.
cleanup() {
  local status=$?
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
  fi
  rm -rf "$tmp"
  [ "$status" -eq 0 ] || { echo "e2e: failed ($status); server log:" >&2; tail -n 20 "$out/server.log" >&2 || true; }
  exit "$status"
}
trap cleanup EXIT

# The server runs in the temporary folder, so no lockgate.toml of the caller's is read;
# its own there adds a data profile of the demo's accounts (a folder store) and an empty
# database to restore snapshots into (the Snapshots steps).
cat >"$tmp/lockgate.toml" <<EOF
[connections.restored]
url = "sqlite://$tmp/restored.db"

[profiles.accounts]
db = "accounts"
store = "$tmp/snapshots"
EOF
: >"$tmp/restored.db"
(cd "$tmp" && exec "$bin" demo --dir "$tmp/demo" --bind "127.0.0.1:$port") >"$out/server.log" 2>&1 &
server=$!
base="http://127.0.0.1:$port"
for i in $(seq 1 150); do
  node -e 'fetch(process.argv[1]).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$base/" && break
  kill -0 "$server" 2>/dev/null || { echo "e2e: the server exited before answering" >&2; exit 1; }
  [ "$i" -lt 150 ] || { echo "e2e: the server did not answer $base/ within 30 s" >&2; exit 1; }
  sleep 0.2
done

BASE="$base" DEMO_DIR="$tmp/demo" LOCKGATE="$bin" OUT="$out" node e2e/dashboard.mjs
