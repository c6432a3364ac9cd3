#!/usr/bin/env bash
# The one command that passes all of topicast's tests on a fresh machine
# (README "Test"). It installs what the tests need when it is missing, then
# runs every tier: lint, unit and actor tests under the race detector,
# end-to-end and browser tests, and each fuzz target for a few seconds.
#
#   scripts/test.sh            everything
#   scripts/test.sh -short     skip the slow end-to-end tests
set -euo pipefail
cd "$(dirname "$0")/.."

short=""
if [[ "${1:-}" == "-short" ]]; then short="-short"; fi

log() { printf '\n== %s\n' "$*"; }

# --- what the tests need -----------------------------------------------------
need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# test/cluster and cluster/redisstore start their own etcd and redis-server
# (throwaway, on free loopback ports); nothing is started globally.
command -v etcd >/dev/null 2>&1 || need_apt+=(etcd-server)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)
# test/nemesis cuts and degrades node-to-node traffic with nftables inside a
# network namespace of its own (unshare, from util-linux).
command -v nft >/dev/null 2>&1 || need_apt+=(nftables)
# test/typescript checks sdk/js/topicast.d.ts with the TypeScript compiler,
# which npm installs there (test/typescript/package-lock.json).
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
# test/observability_test.go checks the alert rules, the dashboard's PromQL
# and a live node's /metrics with promtool, from Debian's prometheus package.
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
if ((${#need_apt[@]})); then
  log "installing ${need_apt[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# Installing the prometheus package starts a Prometheus server (:9090) and,
# recommended, a node exporter (:9100) where the init system lets packages
# start services. The tests need promtool only: stop the services this run
# installed (a stop of a service that did not start fails; that is fine).
if [[ " ${need_apt[*]-} " == *" prometheus "* ]]; then
  for svc in prometheus prometheus-node-exporter; do
    if [[ -d /run/systemd/system ]]; then
      systemctl disable --now "$svc" >/dev/null 2>&1 || true
    else
      invoke-rc.d "$svc" stop >/dev/null 2>&1 || true
    fi
  done
fi

gobin="$(go env GOPATH)/bin"
if ! "$gobin/staticcheck" -version 2>/dev/null | grep -q "(0.8.2)"; then
  log "installing staticcheck"
  (cd /tmp && GOFLAGS= go install honnef.co/go/tools/cmd/staticcheck@v0.8.2)
fi

# --- lint --------------------------------------------------------------------
log "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [[ -n "$unformatted" ]]; then
  echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
# sdk/ is a module of its own (the Go client, sdk/wire, sdk/js): every Go
# step runs in both modules.
log "go vet"
go vet ./...
(cd sdk && go vet ./...)
log "staticcheck"
"$gobin/staticcheck" ./...
(cd sdk && "$gobin/staticcheck" ./...)
log "tsc -p test/typescript (topicast.d.ts against a typed example)"
if [[ ! -x test/typescript/node_modules/.bin/tsc ]]; then
  (cd test/typescript && npm ci --no-audit --no-fund --loglevel=error)
fi
test/typescript/node_modules/.bin/tsc -p test/typescript

# --- tests -------------------------------------------------------------------
log "go test -race (packages)"
go test -race -shuffle=on -timeout 20m $short $(go list ./... | grep -v '/topicast/test')
(cd sdk && go test -race -shuffle=on -timeout 10m $short ./...)

# The end-to-end tiers run one package at a time: some compare latencies with
# and without a disturbance in the same run, which another package's load on
# the two cores would blur.
log "go test -race -p 1 ./test/..."
go test -race -shuffle=on -timeout 40m -p 1 $short ./test/...

# Tests that skip themselves under -race run here, on an uninstrumented build:
# a same-run latency comparison under a flood (under -race it would measure
# the race detector), and two nodes in one process (protoactor's
# remote.Start writes grpc's process-wide logger while the other node's gRPC
# server reads it: a race of the library, not of topicast).
log "go test -run 'TestFlood|TestNodesInOneProcessShareNothing' ./test/ (without -race)"
go test -count=1 -timeout 10m $short -run 'TestFlood$|TestNodesInOneProcessShareNothing$' ./test/

log "fuzz (a few seconds per target)"
# The budget is a count of executions, not a duration: with a duration, Go
# 1.26's fuzz coordinator can report its own -fuzztime deadline as a failure
# ("context deadline exceeded", no crasher written; golang/go#75804, fixed in
# Go 1.27). 50000 executions take about 5 s per target on this machine.
fuzz() { # module-dir package target
  (cd "$1" && go test -run '^$' -fuzz "^$3\$" -fuzztime "${FUZZTIME:-50000x}" "$2")
}
for mp in sdk:./wire/ .:./transport/auth/; do
  mod=${mp%%:*} pkg=${mp#*:}
  for target in $(cd "$mod" && go test -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
    fuzz "$mod" "$pkg" "$target"
  done
done

log "all tests passed"
