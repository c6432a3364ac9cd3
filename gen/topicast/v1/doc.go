// Package topicastv1 holds the Go code generated from
// proto/topicast/v1/publisher.proto: the messages of the topicast.v1
// Publisher service (docs/grpc.md). Package topicastv1connect beside it
// holds the connectrpc.com/connect client and handler.
//
// Do not edit the generated files; change the .proto and run
// `go generate ./gen/topicast/v1`, which needs protoc (Debian's
// protobuf-compiler) and installs the two plugins at the versions go.mod
// pins.
package topicastv1

//go:generate go install google.golang.org/protobuf/cmd/protoc-gen-go connectrpc.com/connect/cmd/protoc-gen-connect-go
//go:generate sh -c "cd ../../.. && protoc -I proto --go_out=gen --go_opt=paths=source_relative --connect-go_out=gen --connect-go_opt=paths=source_relative topicast/v1/publisher.proto"
