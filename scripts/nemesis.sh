#!/usr/bin/env bash
# Runs topicast's nemesis (test/nemesis) for a number of fault cycles and
# prints its report; exits non-zero when the checker finds a violation.
#
#   scripts/nemesis.sh --cycles 100 --seed 42 [--mode redis|memory]
#       [--membership static|etcd] [--nodes 3..5] [--rate N]
#       [--faults kill,pause,...] [--binary path/to/topicast] [--out dir]
#
# Needs root, nft (apt-get install nftables), unshare, ip, redis-server and
# etcd (etcd-server). A failed run leaves its history, report and node logs
# under --out (default: the system's temporary directory) and prints where.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

cycles="" seed="0" mode="redis" membership="static" nodes="3" rate="150" faults=""
while (($#)); do
  case "$1" in
    --cycles) cycles="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --mode) mode="$2"; shift 2 ;;
    --membership) membership="$2"; shift 2 ;;
    --nodes) nodes="$2"; shift 2 ;;
    --rate) rate="$2"; shift 2 ;;
    --faults) faults="$2"; shift 2 ;;
    --binary) export TOPICAST_NEMESIS_BINARY="$2"; shift 2 ;;
    --out) export TOPICAST_NEMESIS_OUT="$2"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done
[[ -n "$cycles" ]] || { echo "--cycles is required" >&2; usage; }
if [[ "$(id -u)" != 0 ]]; then
  echo "the nemesis needs root (network namespace, nftables, node uids)" >&2
  exit 1
fi
for p in nft unshare ip redis-server etcd; do
  command -v "$p" >/dev/null 2>&1 || { echo "$p is not installed" >&2; exit 1; }
done
if [[ "$seed" == 0 ]]; then seed=$(( (RANDOM << 15 | RANDOM) % 1000000 + 1 )); fi
echo "nemesis: $cycles cycles, seed $seed, $mode history, $membership membership, $nodes nodes" >&2

# -timeout 0: a cycle takes about 10 s; 100 cycles about 20 minutes.
exec go test -count=1 -v -timeout 0 -run '^TestNemesisLong$' ./test/nemesis/ \
  -nemesis.cycles "$cycles" -nemesis.seed "$seed" -nemesis.mode "$mode" \
  -nemesis.membership "$membership" -nemesis.nodes "$nodes" -nemesis.rate "$rate" \
  -nemesis.faults "$faults"
