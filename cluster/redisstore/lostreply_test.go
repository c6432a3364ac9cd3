package redisstore

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors"
)

// replyDropper is a TCP proxy to Redis that, once armed, lets the next
// command through, swallows its reply, closes the client's connection and
// stops listening: Redis ran the command, and the client can neither read
// the answer nor connect again.
type replyDropper struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	armed  bool
}

func (p *replyDropper) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.pipe(c)
	}
}

func (p *replyDropper) pipe(c net.Conn) {
	r, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	go func() { _, _ = io.Copy(r, c); r.Close() }()
	buf := make([]byte, 64<<10)
	for {
		n, err := r.Read(buf)
		if err != nil {
			c.Close()
			return
		}
		p.mu.Lock()
		armed := p.armed
		p.mu.Unlock()
		if armed {
			// The armed command's reply: drop it and the way back.
			p.ln.Close()
			c.Close()
			r.Close()
			return
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return
		}
	}
}

// An append that Redis ran but whose reply was lost must not read as
// "nothing written" (actors.ErrNotWritten): the topic would answer retry
// and a keyless publish would be numbered twice. go-redis's own retries
// turned the lost reply into the retry's dial error, which does read so.
func TestAppendWithLostReplyIsNotUnsent(t *testing.T) {
	url := startRedis(t)
	target := strings.TrimSuffix(strings.TrimPrefix(url, "redis://"), "/0")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &replyDropper{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() { ln.Close() })

	s := newStore(t, "redis://"+ln.Addr().String()+"/0", 100)
	direct := newStore(t, url, 100)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	now := time.Now().UnixNano()
	st, err := s.Open(ctx, "lost", "epoch1", 100, 0)
	require.NoError(t, err)
	require.NoError(t, s.Append(ctx, "lost", st.Fence, msgs(1, 1, now), 0))

	p.mu.Lock()
	p.armed = true
	p.mu.Unlock()
	err = s.Append(ctx, "lost", st.Fence, msgs(2, 1, now), 0)
	require.Error(t, err)
	require.False(t, errors.Is(err, actors.ErrNotWritten), "a command that reached Redis is not unsent: %v", err)

	again, err := direct.Open(ctx, "lost", "epoch2", 100, 0)
	require.NoError(t, err)
	require.Equal(t, uint64(2), again.Head, "Redis ran the append whose reply was lost")
}
