// Package grpcapi serves topicast.v1.Publisher (proto/topicast/v1), the
// API of backend services, with connectrpc.com/connect: one handler
// speaks gRPC, gRPC-Web and the Connect protocol, mounted on the HTTP
// port under /topicast.v1.Publisher/ (gRPC needs HTTP/2 there: h2c on a
// cleartext port).
//
//	path, h := grpcapi.New(grpcapi.Config{Publisher: api, History: node, Accept: accept}).Handler()
//	mux.Handle(path, h)
//
// Publish and PublishBatch go through the node's one publish path, the
// one of POST /v1/publish (Publisher: httpapi.API's AdmitPublish and
// Publish, and wire.CheckPublishItems), so they validate, deduplicate by
// key and fail exactly as it does; only the error's form differs (a gRPC
// status, see Code). The API key travels as metadata,
// "authorization: Bearer <key>".
//
// History and Subscribe read topics. They accept an API key (a service
// reads everything), or, when client tokens are required, a client token
// that allows subscribing to the topic, as GET /v1/history does; with API
// keys and no token secret they need the key.
//
// Subscribe is a client session like an SSE stream: the handler gives a
// transport.Session to the node's AcceptFunc and sends it the sub command
// of the WebSocket protocol, so subscription, recovery (since, recovered)
// and resets are the WebSocket logic. The session's writer turns the
// frames into SubscribeResponse events and sends them, with a write
// deadline. The stream ends with a status when the session closes (see
// closeStatus); the client ends it by cancelling the call.
//
// Service is goroutine-safe.
package grpcapi
