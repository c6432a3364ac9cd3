module github.com/topicast/topicast/sdk

go 1.26.8

// The Go client of topicast, a module of its own so that importing it pulls
// none of the server's dependencies (test/sdkmodule_test.go checks its
// module graph). quic-go stays at v0.64.x: webtransport-go v0.13.0 does
// not build with v0.65.

require (
	github.com/centrifugal/fdelta v0.0.3
	github.com/gobwas/ws v1.5.0
	github.com/quic-go/quic-go v0.64.1
	github.com/quic-go/webtransport-go v0.13.0
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
)

require (
	github.com/dunglas/httpsfv v1.1.1 // indirect
	github.com/gobwas/httphead v0.1.0 // indirect
	github.com/quic-go/qpack v0.6.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/text v0.43.0 // indirect
)
