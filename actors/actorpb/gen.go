// Package actorpb holds the protobuf messages that topicast actors exchange,
// which may cross nodes (protoactor's remote requires protobuf).
//
// The Go code is generated from topic.proto and committed; regenerate it with
// `go generate ./actors/actorpb` (needs protoc, from Debian's
// protobuf-compiler, and installs protoc-gen-go at the version go.mod pins).
package actorpb

//go:generate go install google.golang.org/protobuf/cmd/protoc-gen-go
//go:generate sh -c "protoc --go_out=. --go_opt=paths=source_relative -I . -I $(go list -m -f '{{.Dir}}' github.com/asynkron/protoactor-go)/actor topic.proto"
