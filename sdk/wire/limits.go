package wire

// DefaultMaxMessage is the largest message data, in bytes, that a server
// accepts unless configured otherwise (--max-message; docs/protocol.md,
// "Data": 64 KiB after compaction). Every server-side package that bounds
// message data defaults to it.
const DefaultMaxMessage = 64 << 10
