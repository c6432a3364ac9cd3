#!/bin/sh
# Builds the topicast binary as the container ships it: static (no cgo, so no
# libc to match in a distroless or scratch image) and with -trimpath (no
# build machine paths in it). The Dockerfile runs this script, and so does
# test/docker_test.go, which checks the result: the flags live here only, so
# the container recipe cannot drift from what the tests build.
#
#   scripts/build-static.sh OUT     OUT relative to the repository root, or absolute
set -eu
out=${1:?usage: scripts/build-static.sh OUT}
cd "$(dirname "$0")/.."
CGO_ENABLED=0 exec go build -trimpath -ldflags="-s -w" -o "$out" ./cmd/topicast
