#!/usr/bin/env bash
# Starts moto's S3-compatible server for lockgate-store's tests (and every test that takes
# a snapshot to S3) on 127.0.0.1:${LOCKGATE_MOTO_PORT:-5055}: installs it from PyPI when
# missing, starts it in the background when nothing answers there, and waits until it
# does. Safe to run again: a server already answering is left alone.
set -euo pipefail

port=${LOCKGATE_MOTO_PORT:-5055}
tmp=${TMPDIR:-/tmp}
log_file="$tmp/lockgate-moto.log"
pid_file="$tmp/lockgate-moto.pid"
url="http://127.0.0.1:$port"

answers() { curl -s -o /dev/null --max-time 2 "$url/"; }

if answers; then
  echo "moto already answers on $url"
  exit 0
fi

if ! command -v moto_server >/dev/null 2>&1; then
  echo "installing moto[server] from PyPI"
  python3 -m pip install --quiet 'moto[server]'
  hash -r
fi
command -v moto_server >/dev/null 2>&1 || { echo "moto_server is not on PATH after installing moto[server]"; exit 1; }

# setsid: the server outlives this script and is not killed with its process group.
setsid moto_server -H 127.0.0.1 -p "$port" >"$log_file" 2>&1 < /dev/null &
echo $! >"$pid_file"

for _ in $(seq 1 60); do
  if answers; then
    echo "moto answers on $url (pid $(cat "$pid_file"), log $log_file)"
    exit 0
  fi
  if ! kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    echo "moto_server exited; its log ($log_file):"
    cat "$log_file"
    exit 1
  fi
  sleep 0.5
done
echo "moto did not answer on $url within 30 s; its log ($log_file):"
cat "$log_file"
exit 1
