# syntax=docker/dockerfile:1
#
# topicast in a container: a static binary on distroless, run as non-root.
#
#   docker build -t topicast .
#   docker run --rm -p 8080:8080 topicast
#
# The binary is built by scripts/build-static.sh, which test/docker_test.go
# runs too (and checks that the result is static); deploy/compose.yaml runs
# three nodes with Redis and etcd. See README "Docker".

# The Go version of go.mod's go line (test/docker_test.go checks it).
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY . .
# Cache mounts keep modules and build results between builds, without a
# go.mod-only layer that would miss any module the tree adds.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    scripts/build-static.sh /out/topicast

# distroless/static: CA certificates, tzdata and /etc/passwd with nonroot
# (uid 65532), no shell, no libc: the static binary needs none.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/topicast /topicast
USER nonroot:nonroot
# 8080: HTTP (WebSocket, SSE, polling, POST /v1/publish, /metrics, /readyz).
# 4433/udp: WebTransport, when enabled with --wt and a certificate.
# 4434/udp: WebRTC, when enabled with --webrtc-udp 0.0.0.0:4434 and
# --webrtc-public-ip (the address clients reach, not the container's).
# 7101-7102: a cluster address (--cluster-addr) and, with --peers, the port
# after it; reachable between nodes only, never from clients.
EXPOSE 8080/tcp 4433/udp 4434/udp 7101/tcp 7102/tcp
ENTRYPOINT ["/topicast", "serve"]
# A single node listening on every interface. WebTransport is off: its
# development certificate is for loopback; give --tls-cert/--tls-key and
# --wt 0.0.0.0:4433 to serve it. WebRTC is off too: its candidates would
# name the container's own address. Compose replaces these flags per node.
CMD ["--http", "0.0.0.0:8080", "--wt", "off", "--webrtc", "off", "--log-format", "json"]
