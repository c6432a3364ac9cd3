package wire

import (
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"iter"
	"sort"
)

// Limits of cursors. A cursor of MaxCursorTopics topics with the longest
// names and epochs encodes to less than MaxCursorLen, so every cursor that
// Cursor.Set accepts can be decoded.
const (
	// CursorVersion is the version of the cursor format that AppendEncoded
	// writes; DecodeCursor refuses others.
	CursorVersion = 1
	// MaxCursorTopics is the most topics one cursor records.
	MaxCursorTopics = 64
	// MaxCursorLen is the longest encoded cursor in bytes.
	MaxCursorLen = 24 << 10
	// MaxEpochLen is the longest epoch in bytes.
	MaxEpochLen = 64
)

// The encoded form of a cursor is base64url (RFC 4648 §5, no padding) of:
//
//	version     1 byte (CursorVersion)
//	count       uvarint, 1..MaxCursorTopics
//	count times, topics in strictly increasing byte order:
//	  topic     uvarint length + bytes
//	  epoch     uvarint length + bytes
//	  seq       uvarint
//	check       4 bytes, big-endian CRC-32C of everything before it, seeded
//	            with the checksum of "topicast.cursor"
//
// The check makes a truncated, altered or foreign string fail with a clear
// error instead of naming wrong positions; it is no signature (a cursor only
// names positions a client may ask for anyway).
var (
	cursorTable = crc32.MakeTable(crc32.Castagnoli)
	cursorSeed  = crc32.Checksum([]byte("topicast.cursor"), cursorTable)
	cursorB64   = base64.RawURLEncoding.Strict()
)

const cursorCheckLen = 4

// Cursor records a position (epoch, seq) in each of one or more topics: the
// last message a client has of each. Its encoded form is the opaque string
// of the protocol (SSE ids, Last-Event-ID, cursor= and /v1/poll), URL-safe
// and versioned.
//
// A Cursor is not goroutine-safe. The zero value is an empty cursor.
type Cursor struct {
	entries []cursorEntry // sorted by topic
	scratch []byte
}

type cursorEntry struct {
	topic string
	pos   Position
}

// Len returns the number of topics the cursor records.
func (c *Cursor) Len() int { return len(c.entries) }

// find returns the index of topic, or where it would be inserted.
func (c *Cursor) find(topic string) (int, bool) {
	i := sort.Search(len(c.entries), func(i int) bool { return c.entries[i].topic >= topic })
	return i, i < len(c.entries) && c.entries[i].topic == topic
}

// Get returns the position recorded for topic.
func (c *Cursor) Get(topic string) (Position, bool) {
	i, ok := c.find(topic)
	if !ok {
		return Position{}, false
	}
	return c.entries[i].pos, true
}

// Set records p for topic. It answers a *Error with CodeBadRequest when the
// topic or the epoch is not valid, or when the cursor already holds
// MaxCursorTopics other topics.
func (c *Cursor) Set(topic string, p Position) error {
	i, ok := c.find(topic)
	if ok {
		if c.entries[i].pos.Epoch != p.Epoch {
			if err := ValidateEpoch(p.Epoch); err != nil {
				return err
			}
		}
		c.entries[i].pos = p
		return nil
	}
	if err := ValidateTopic(topic); err != nil {
		return err
	}
	if err := ValidateEpoch(p.Epoch); err != nil {
		return err
	}
	if len(c.entries) >= MaxCursorTopics {
		return Errorf(CodeBadRequest, "a cursor records at most %d topics", MaxCursorTopics)
	}
	c.entries = append(c.entries, cursorEntry{})
	copy(c.entries[i+1:], c.entries[i:])
	c.entries[i] = cursorEntry{topic: topic, pos: p}
	return nil
}

// All yields every topic and its position, in byte order of the topics.
func (c *Cursor) All() iter.Seq2[string, Position] {
	return func(yield func(string, Position) bool) {
		for _, e := range c.entries {
			if !yield(e.topic, e.pos) {
				return
			}
		}
	}
}

// Advance records the position of a msg or reset frame (as AppendMsg and
// AppendReset make them) for its topic and reports whether frame was one.
// It does not allocate while the topic is known and its epoch unchanged.
func (c *Cursor) Advance(frame []byte) bool {
	h, ok := ParseHead(frame)
	return ok && c.AdvanceTo(&h)
}

// AdvanceTo is Advance for a frame already parsed by ParseHead. It reports
// false, recording nothing, when the topic or the epoch is not valid or the
// cursor is full.
func (c *Cursor) AdvanceTo(h *Head) bool {
	if i, found := c.findBytes(h.Topic); found && c.entries[i].pos.Epoch == string(h.Epoch) {
		c.entries[i].pos.Seq = h.Seq
		return true
	}
	return c.Set(string(h.Topic), Position{Epoch: string(h.Epoch), Seq: h.Seq}) == nil
}

// findBytes is find for a topic in bytes, without converting it.
func (c *Cursor) findBytes(topic []byte) (int, bool) {
	lo, hi := 0, len(c.entries)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if c.entries[m].topic < string(topic) {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo, lo < len(c.entries) && c.entries[lo].topic == string(topic)
}

// AppendEncoded appends the cursor's encoded form to dst. It reuses a
// buffer of c, so encoding a cursor once per delivery does not allocate
// once dst has room.
func (c *Cursor) AppendEncoded(dst []byte) []byte {
	b := append(c.scratch[:0], CursorVersion)
	b = binary.AppendUvarint(b, uint64(len(c.entries)))
	for _, e := range c.entries {
		b = binary.AppendUvarint(b, uint64(len(e.topic)))
		b = append(b, e.topic...)
		b = binary.AppendUvarint(b, uint64(len(e.pos.Epoch)))
		b = append(b, e.pos.Epoch...)
		b = binary.AppendUvarint(b, e.pos.Seq)
	}
	b = appendCursorCheck(b)
	c.scratch = b
	return cursorB64.AppendEncode(dst, b)
}

// appendCursorCheck appends the integrity check of body to it.
func appendCursorCheck(body []byte) []byte {
	return binary.BigEndian.AppendUint32(body, crc32.Update(cursorSeed, cursorTable, body))
}

// String returns the encoded cursor.
func (c *Cursor) String() string { return string(c.AppendEncoded(nil)) }

// DecodeCursor parses an encoded cursor. Every failure (empty, too long,
// not base64url, truncated or altered, another version, bad topic or
// epoch, more than MaxCursorTopics topics) is a *Error with CodeBadRequest
// whose message says what is wrong.
func DecodeCursor(s string) (*Cursor, error) {
	if s == "" {
		return nil, Errorf(CodeBadRequest, "cursor is empty")
	}
	if len(s) > MaxCursorLen {
		return nil, Errorf(CodeBadRequest, "cursor is longer than %d bytes", MaxCursorLen)
	}
	for i := 0; i < len(s); i++ {
		// The decoder would skip line ends; a cursor has none.
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return nil, Errorf(CodeBadRequest, "cursor is not valid: not base64url text")
		}
	}
	const foreign = "cursor is not valid: truncated, altered or not made by a topicast server"
	b, err := cursorB64.AppendDecode(nil, []byte(s))
	if err != nil {
		// Only the length or the last character can be wrong here.
		return nil, Errorf(CodeBadRequest, foreign)
	}
	if len(b) < 1+1+cursorCheckLen {
		return nil, Errorf(CodeBadRequest, "cursor is not valid: too short to be a topicast cursor")
	}
	body, check := b[:len(b)-cursorCheckLen], b[len(b)-cursorCheckLen:]
	if crc32.Update(cursorSeed, cursorTable, body) != binary.BigEndian.Uint32(check) {
		return nil, Errorf(CodeBadRequest, foreign)
	}
	if body[0] != CursorVersion {
		return nil, Errorf(CodeBadRequest, "cursor version %d is not supported (this server reads version %d)", body[0], CursorVersion)
	}
	d := cursorDecoder{b: body[1:]}
	n := d.uvarint()
	if d.bad || n == 0 || n > MaxCursorTopics {
		return nil, Errorf(CodeBadRequest, "cursor is not valid: it must record 1 to %d topics", MaxCursorTopics)
	}
	c := &Cursor{entries: make([]cursorEntry, 0, n)}
	for i := uint64(0); i < n; i++ {
		topic := d.str(MaxTopicLen)
		epoch := d.str(MaxEpochLen)
		seq := d.uvarint()
		if d.bad {
			return nil, Errorf(CodeBadRequest, "cursor is not valid: malformed entry %d", i)
		}
		if err := ValidateTopic(topic); err != nil {
			return nil, Errorf(CodeBadRequest, "cursor is not valid: %s", err.(*Error).Message)
		}
		if err := ValidateEpoch(epoch); err != nil {
			return nil, Errorf(CodeBadRequest, "cursor is not valid: %s", err.(*Error).Message)
		}
		if k := len(c.entries); k > 0 && c.entries[k-1].topic >= topic {
			return nil, Errorf(CodeBadRequest, "cursor is not valid: topics repeated or out of order")
		}
		c.entries = append(c.entries, cursorEntry{topic: topic, pos: Position{Epoch: epoch, Seq: seq}})
	}
	if len(d.b) != 0 {
		return nil, Errorf(CodeBadRequest, "cursor is not valid: trailing bytes")
	}
	return c, nil
}

type cursorDecoder struct {
	b   []byte
	bad bool
}

func (d *cursorDecoder) uvarint() uint64 {
	if d.bad {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	// A last byte of 0 after others is a longer spelling of a smaller
	// number: refused, so that a cursor has one encoding only.
	if n <= 0 || (n > 1 && d.b[n-1] == 0) {
		d.bad = true
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *cursorDecoder) str(maxLen int) string {
	n := d.uvarint()
	if d.bad || n > uint64(maxLen) || n > uint64(len(d.b)) {
		d.bad = true
		return ""
	}
	s := string(d.b[:n])
	d.b = d.b[n:]
	return s
}

// ValidateEpoch checks an epoch: 1 to MaxEpochLen bytes of printable ASCII
// other than '"' and '\', so that frames can carry it without escaping. It
// answers a *Error with CodeBadRequest.
func ValidateEpoch(epoch string) error {
	if epoch == "" {
		return Errorf(CodeBadRequest, "epoch is missing")
	}
	if len(epoch) > MaxEpochLen {
		return Errorf(CodeBadRequest, "epoch is longer than %d bytes", MaxEpochLen)
	}
	for i := 0; i < len(epoch); i++ {
		if c := epoch[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return Errorf(CodeBadRequest, "epoch has a byte outside printable ASCII at offset %d", i)
		}
	}
	return nil
}
