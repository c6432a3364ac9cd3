package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors"
)

// startRedis runs a throwaway redis-server for the test; it skips when
// redis-server is missing, unless CI is set.
func startRedis(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is not installed (apt-get install redis-server)")
		}
		t.Skip("redis-server is not installed (apt-get install redis-server); scripts/test.sh installs it")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	cmd := exec.Command(bin, "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // a throwaway server
		_ = cmd.Wait()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		require.Less(t, i, 200, "redis-server does not answer")
		time.Sleep(25 * time.Millisecond)
	}
	return "redis://" + addr + "/0"
}

func newStore(t *testing.T, url string, size int) *Store {
	t.Helper()
	s, err := New(Config{URL: url, HistorySize: size, HistoryTTL: time.Minute, KeyTTL: time.Minute})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func msgs(first uint64, n int, at int64, keys ...string) []actors.StoredMessage {
	out := make([]actors.StoredMessage, n)
	for i := range out {
		seq := first + uint64(i)
		out[i] = actors.StoredMessage{Seq: seq, At: at, Frame: []byte(fmt.Sprintf(`{"op":"msg","seq":%d}`, seq))}
		if i < len(keys) {
			out[i].Key = keys[i]
		}
	}
	return out
}

func TestStore(t *testing.T) {
	url := startRedis(t)
	ctx := context.Background()
	now := time.Now().UnixNano()

	t.Run("open creates, appends, reopens with the same epoch and messages", func(t *testing.T) {
		s := newStore(t, url, 100)
		st, err := s.Open(ctx, "a", "epoch1", 100, 0)
		require.NoError(t, err)
		require.Equal(t, &actors.TopicState{Fence: 1, Epoch: "epoch1"}, st)
		require.NoError(t, s.Append(ctx, "a", st.Fence, msgs(1, 3, now), 0))
		require.NoError(t, s.Append(ctx, "a", st.Fence, msgs(4, 2, now), 0))
		st2, err := s.Open(ctx, "a", "other", 100, 0)
		require.NoError(t, err)
		require.Equal(t, uint64(2), st2.Fence)
		require.Equal(t, "epoch1", st2.Epoch)
		require.Equal(t, uint64(5), st2.Head)
		require.Len(t, st2.Messages, 5)
		for i, m := range st2.Messages {
			require.Equal(t, uint64(i+1), m.Seq)
			require.Equal(t, now, m.At)
			require.Equal(t, fmt.Sprintf(`{"op":"msg","seq":%d}`, i+1), string(m.Frame))
		}
		// The first activation is fenced out and writes nothing.
		require.ErrorIs(t, s.Append(ctx, "a", st.Fence, msgs(6, 1, now), 0), actors.ErrFenced)
		require.NoError(t, s.Append(ctx, "a", st2.Fence, msgs(6, 1, now), 0))
		// A limit keeps the newest.
		st3, err := s.Open(ctx, "a", "", 2, 0)
		require.NoError(t, err)
		require.Equal(t, []uint64{5, 6}, seqs(st3.Messages))
	})

	t.Run("a head that does not follow is refused", func(t *testing.T) {
		s := newStore(t, url, 100)
		st, err := s.Open(ctx, "b", "e", 100, 0)
		require.NoError(t, err)
		require.ErrorIs(t, s.Append(ctx, "b", st.Fence, msgs(2, 1, now), 0), actors.ErrFenced)
	})

	t.Run("a batch applied twice counts once", func(t *testing.T) {
		// go-redis sends a command again when its reply is lost: the second
		// run finds the head at the batch's end under the same fence.
		s := newStore(t, url, 100)
		st, err := s.Open(ctx, "twice", "e", 100, 0)
		require.NoError(t, err)
		batch := msgs(1, 2, now, "p", "q")
		require.NoError(t, s.Append(ctx, "twice", st.Fence, batch, 0))
		require.NoError(t, s.Append(ctx, "twice", st.Fence, batch, 0))
		st, err = s.Open(ctx, "twice", "e", 100, 0)
		require.NoError(t, err)
		require.Equal(t, uint64(2), st.Head)
		require.Equal(t, []uint64{1, 2}, seqs(st.Messages))
	})

	t.Run("a store out of reach wrote nothing", func(t *testing.T) {
		s := newStore(t, url, 100)
		st, err := s.Open(ctx, "gone", "e", 100, 0)
		require.NoError(t, err)
		opts := *s.Client().Options()
		opts.Addr = "127.0.0.1:1" // nothing listens there
		down := &Store{cfg: s.cfg, rdb: redis.NewClient(&opts)}
		defer down.Close()
		err = down.Append(ctx, "gone", st.Fence, msgs(1, 1, now), 0)
		require.ErrorIs(t, err, actors.ErrNotWritten)
	})

	t.Run("idempotency keys", func(t *testing.T) {
		s := newStore(t, url, 100)
		st, err := s.Open(ctx, "k", "e", 100, 0)
		require.NoError(t, err)
		require.NoError(t, s.Append(ctx, "k", st.Fence, msgs(1, 2, now, "x", "y"), 0))
		st, err = s.Open(ctx, "k", "e", 100, 0) // as after a failover
		require.NoError(t, err)
		err = s.Append(ctx, "k", st.Fence, msgs(3, 3, now, "z", "y", "x"), 0)
		var dup *actors.DuplicateKeysError
		require.True(t, errors.As(err, &dup), "%v", err)
		require.Equal(t, map[string]uint64{"x": 1, "y": 2}, dup.Seqs)
		// Nothing of the batch was written.
		require.NoError(t, s.Append(ctx, "k", st.Fence, msgs(3, 1, now, "z"), 0))
		ttl, err := s.Client().PTTL(ctx, s.idemKey("k", "z")).Result()
		require.NoError(t, err)
		require.InDelta(t, time.Minute.Seconds(), ttl.Seconds(), 2)
	})

	t.Run("age and trimming", func(t *testing.T) {
		s := newStore(t, url, 100)
		st, err := s.Open(ctx, "t", "e", 100, 0)
		require.NoError(t, err)
		old := now - int64(10*time.Minute)
		require.NoError(t, s.Append(ctx, "t", st.Fence, msgs(1, 3, old), 0))
		require.NoError(t, s.Append(ctx, "t", st.Fence, msgs(4, 3, now), 0))
		st, err = s.Open(ctx, "t", "e", 100, now-int64(time.Minute))
		require.NoError(t, err)
		require.Equal(t, []uint64{4, 5, 6}, seqs(st.Messages), "expired messages are not loaded")
		require.NoError(t, s.Trim(ctx, "t", st.Fence, 5))
		n, err := s.Client().XLen(ctx, s.streamKey("t")).Result()
		require.NoError(t, err)
		require.Equal(t, int64(2), n)
		require.NoError(t, s.Append(ctx, "t", st.Fence, msgs(7, 1, now), 6))
		st, err = s.Open(ctx, "t", "e", 100, 0)
		require.NoError(t, err)
		require.Equal(t, []uint64{6, 7}, seqs(st.Messages))
		require.Equal(t, uint64(7), st.Head)
		require.ErrorIs(t, s.Trim(ctx, "t", st.Fence-1, 7), actors.ErrFenced)
	})

	t.Run("MAXLEN bounds the stream", func(t *testing.T) {
		s := newStore(t, url, 10)
		st, err := s.Open(ctx, "m", "e", 10, 0)
		require.NoError(t, err)
		for i := range 50 {
			require.NoError(t, s.Append(ctx, "m", st.Fence, msgs(uint64(i*10+1), 10, now), 0))
		}
		n, err := s.Client().XLen(ctx, s.streamKey("m")).Result()
		require.NoError(t, err)
		require.Less(t, n, int64(200), "approximate trimming keeps about MAXLEN")
		st, err = s.Open(ctx, "m", "e", 10, 0)
		require.NoError(t, err)
		require.Len(t, st.Messages, 10)
		require.Equal(t, uint64(500), st.Messages[9].Seq)
	})

	t.Run("no history kept", func(t *testing.T) {
		s := newStore(t, url, -1)
		st, err := s.Open(ctx, "n", "e", 0, 0)
		require.NoError(t, err)
		require.NoError(t, s.Append(ctx, "n", st.Fence, msgs(1, 3, now, "q"), 0))
		st, err = s.Open(ctx, "n", "e", 0, 0)
		require.NoError(t, err)
		require.Equal(t, uint64(3), st.Head)
		require.Empty(t, st.Messages)
	})

	t.Run("unreachable redis: New succeeds, Ping and Open fail", func(t *testing.T) {
		s, err := New(Config{URL: "redis://127.0.0.1:1/0", HistoryTTL: time.Minute, KeyTTL: time.Minute})
		require.NoError(t, err)
		defer s.Close()
		require.ErrorContains(t, s.Ping(ctx), "127.0.0.1:1 does not answer")
		_, err = s.Open(ctx, "down", "e", 0, 0)
		require.Error(t, err)
	})

	t.Run("bad URL fails New", func(t *testing.T) {
		_, err := New(Config{URL: "http://127.0.0.1:1", HistoryTTL: time.Minute, KeyTTL: time.Minute})
		require.Error(t, err)
	})
}

func seqs(ms []actors.StoredMessage) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.Seq
	}
	return out
}
