#!/usr/bin/env bash
# cluster-bench.sh: topicast bench against a static cluster of node
# processes on this machine (issue 19): every delivery checked, per-node CPU
# and RSS, and the delivery messages between nodes per publish (from each
# node's topicast_relay_deliveries_total), for each publish rate in turn.
#
# Usage: scripts/cluster-bench.sh [-nodes 6] [-conns 100000] [-topics 1]
#          [-rates 1,10] [-duration 20s] [-procs auto] [-pubs N] [-redis]
# -procs auto takes one load process per 17,000 connections (a process may
# hold 20,000 descriptors here). Ports from 19100 (HTTP) and 19200
# (cluster) on 127.0.0.1.
set -euo pipefail
nodes=6 conns=100000 topics=1 rates=1,10 duration=20s procs=auto redis="" pubs=()
while [ $# -gt 0 ]; do
  case "$1" in
    -nodes) nodes=$2; shift 2 ;;
    -conns) conns=$2; shift 2 ;;
    -topics) topics=$2; shift 2 ;;
    -rates) rates=$2; shift 2 ;;
    -duration) duration=$2; shift 2 ;;
    -procs) procs=$2; shift 2 ;;
    -pubs) pubs=(-pubs "$2"); shift 2 ;;
    -redis) redis=yes; shift ;;
    *) echo "cluster-bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ "$procs" = auto ] && procs=$(( (conns + 16999) / 17000 ))
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # The nodes' logs outlive the run: a node may have restarted under load.
  logs=/tmp/cluster-bench-logs.$$
  mkdir -p "$logs" && cp "$dir"/*.log "$logs"/ 2>/dev/null && echo "nodes' logs: $logs" >&2
  rm -rf "$dir"
}
trap cleanup EXIT
cd "$root"
go build -o "$dir/topicast" ./cmd/topicast

peers=""
for i in $(seq 1 "$nodes"); do peers+="${peers:+,}127.0.0.1:$((19200 + 2*i))"; done
extra=()
if [ -n "$redis" ]; then
  redis-server --port 19099 --save "" --appendonly no --daemonize no >"$dir/redis.log" 2>&1 & pids+=($!)
  extra=(--redis redis://127.0.0.1:19099/0)
fi
urls="" metrics=()
for i in $(seq 1 "$nodes"); do
  http=127.0.0.1:$((19100 + i))
  "$dir/topicast" serve --node "n$i" --http "$http" --cluster-addr "127.0.0.1:$((19200 + 2*i))" --peers "$peers" \
    --wt off --webrtc off --publish-rate 0 --max-conns 0 --log-level warn "${extra[@]}" 2>"$dir/n$i.log" & pids+=($!)
  urls+="${urls:+,}ws://$http/ws"
  metrics+=("http://$http/metrics")
done
for m in "${metrics[@]}"; do
  base=${m%/metrics}
  for _ in $(seq 1 100); do curl -fs "$base/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
  curl -fs "$base/readyz" >/dev/null || { echo "cluster-bench.sh: $base not ready" >&2; cat "$dir"/n*.log >&2; exit 1; }
done

# sum_metric NAME: the sum over the nodes of the series whose line starts
# with NAME (a metric name with its labels).
sum_metric() {
  local total=0 v
  for m in "${metrics[@]}"; do
    v=$(curl -fs "$m" | awk -v n="$1" 'index($0, n" ") == 1 {print $2}')
    total=$(awk -v a="$total" -v b="${v:-0}" 'BEGIN {printf "%.0f", a + b}')
  done
  echo "$total"
}

echo "== $nodes nodes, $conns WebSocket subscribers on $topics topic(s), $procs load processes, $(nproc) cores, commit $(git rev-parse --short HEAD)"
for rate in ${rates//,/ }; do
  loc0=$(sum_metric 'topicast_relay_deliveries_total{scope="local"}')
  rem0=$(sum_metric 'topicast_relay_deliveries_total{scope="remote"}')
  "$dir/topicast" bench -url "$urls" -conns "$conns" -topics "$topics" -rate "$rate" -duration "$duration" \
    -procs "$procs" "${pubs[@]}" -quiet | tee "$dir/report.txt"
  # The bench's own publishes: the nodes' counters also count sys:stats.
  pub=$(awk '$1 == "published" {print $2}' "$dir/report.txt")
  loc1=$(sum_metric 'topicast_relay_deliveries_total{scope="local"}')
  rem1=$(sum_metric 'topicast_relay_deliveries_total{scope="remote"}')
  awk -v p="$pub" -v l=$((loc1 - loc0)) -v r=$((rem1 - rem0)) 'BEGIN {
    printf "between nodes: %d bench publishes, %d local and %d remote delivery messages: %.2f per publish (%.2f to other nodes)\n",
      p, l, r, (l + r) / (p ? p : 1), r / (p ? p : 1) }'
done
