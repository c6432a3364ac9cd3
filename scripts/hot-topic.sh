#!/usr/bin/env bash
# hot-topic.sh: how many messages per second one topic accepts, in order
# (issue 19). Three ways in, each against one topicast process:
#   1. single publishes: POST /v1/publish of one message, keep-alive, with
#      wrk, against scripts/hottopic/bare (a net/http handler that reads
#      the body and answers) in the same run: bare, topicast, bare,
#      topicast, so both see the same machine;
#   2. batches: POST /v1/publish of 100 messages, with wrk;
#   3. clients' pub frames over WebSocket (scripts/hottopic/pubload).
# The topic's head must grow by exactly the messages answered (checked for
# 2 and 3 from /v1/history; wrk counts non-2xx answers for 1 and 2).
#
# Usage: scripts/hot-topic.sh [seconds per run, default 10]
# Needs wrk (apt install wrk). Ports 18090 and 18091 on 127.0.0.1.
set -euo pipefail
secs=${1:-10}
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$dir"
}
trap cleanup EXIT
command -v wrk >/dev/null || { echo "hot-topic.sh: wrk is missing (apt install wrk)" >&2; exit 1; }

cd "$root"
go build -o "$dir/topicast" ./cmd/topicast
go build -o "$dir/bare" ./scripts/hottopic/bare
go build -o "$dir/pubload" ./scripts/hottopic/pubload
echo '{"topic":"hot.single","data":{"v":12345,"name":"a hot topic message"}}' > "$dir/single.json"
{
  printf '{"messages":['
  for i in $(seq 1 100); do
    [ "$i" -gt 1 ] && printf ','
    printf '{"topic":"hot.batch","data":{"v":%d,"name":"a hot topic message"}}' "$i"
  done
  printf ']}\n'
} > "$dir/batch.json"

"$dir/bare" -addr 127.0.0.1:18090 & pids+=($!)
"$dir/topicast" serve --http 127.0.0.1:18091 --wt off --webrtc off --publish-rate 0 --command-rate 0 \
  --log-level warn & pids+=($!)
for port in 18090 18091; do
  for _ in $(seq 1 50); do curl -fs "127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
done

# wrk_rate BODY URL CONNS: requests per second, failing on non-2xx answers.
wrk_rate() {
  local out
  out=$(BODY="$1" wrk -t1 -c"$3" -d"${secs}s" -s "$root/scripts/hottopic/post.lua" "$2")
  if grep -q "Non-2xx" <<<"$out"; then echo "$out" >&2; echo "hot-topic.sh: errors answered" >&2; exit 1; fi
  awk '/Requests\/sec/ {print $2}' <<<"$out"
}
head_of() { curl -fs "127.0.0.1:18091/v1/history?limit=1&topic=$1" | sed -E 's/.*"head":([0-9]+).*/\1/'; }

echo "== single publishes, 32 keep-alive connections, ${secs}s each (machine: $(nproc) cores)"
b1=$(wrk_rate "$dir/single.json" http://127.0.0.1:18090/v1/publish 32)
t1=$(wrk_rate "$dir/single.json" http://127.0.0.1:18091/v1/publish 32)
b2=$(wrk_rate "$dir/single.json" http://127.0.0.1:18090/v1/publish 32)
t2=$(wrk_rate "$dir/single.json" http://127.0.0.1:18091/v1/publish 32)
awk -v b1="$b1" -v b2="$b2" -v t1="$t1" -v t2="$t2" 'BEGIN {
  printf "bare net/http: %.0f, %.0f req/s; topicast: %.0f, %.0f msg/s; ratio %.2fx\n", b1, b2, t1, t2, (t1+t2)/(b1+b2) }'

echo "== batches of 100 messages, 8 connections, ${secs}s"
h0=$(head_of hot.batch)
rb=$(wrk_rate "$dir/batch.json" http://127.0.0.1:18091/v1/publish 8)
h1=$(head_of hot.batch)
awk -v r="$rb" -v h0="$h0" -v h1="$h1" 'BEGIN { printf "%.0f batches/s = %.0f msg/s into one topic (head %d -> %d)\n", r, r*100, h0, h1 }'

echo "== clients' pub over WebSocket, 8 connections x 16 in flight, ${secs}s"
"$dir/pubload" -url http://127.0.0.1:18091 -topic hot.pub -conns 8 -inflight 16 -duration "${secs}s"
