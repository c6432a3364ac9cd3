package actors

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/centrifugal/fdelta"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors/actorpb"
	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/sdk/wire"
)

// doc is a 2 KiB JSON document whose field n changes.
func doc(n int) *actorpb.PublishItem {
	return &actorpb.PublishItem{Data: fmt.Appendf(nil, `{"pad":%q,"n":%d}`, strings.Repeat("x", 2000), n)}
}

// rebuild applies what a delta subscriber got, as a client does, and
// returns each message's data and how many came as deltas.
func rebuild(t *testing.T, frames [][]byte) (datas []string, deltas int) {
	t.Helper()
	var prev []byte
	for _, f := range frames {
		h, ok := wire.ParseHead(f)
		if !ok || h.Kind != wire.FrameMsg {
			continue
		}
		data := h.Data
		if h.Delta {
			var d string
			require.NoError(t, json.Unmarshal(h.Data, &d))
			var err error
			data, err = fdelta.Apply(prev, []byte(d))
			require.NoError(t, err, "seq %d", h.Seq)
			deltas++
		}
		prev = data
		datas = append(datas, string(data))
	}
	return datas, deltas
}

// A delta subscriber gets its first message whole and then deltas that
// rebuild every message byte-exact; one that joins later starts whole too;
// a plain subscriber of the same relay gets full frames; the relay counts
// the bytes saved.
func TestDeltaSubscription(t *testing.T) {
	e := newEnv(t, TopicConfig{})
	plain, early := e.connect(), e.connect()
	plain.send(`{"op":"sub","id":1,"topic":"board"}`)
	early.send(`{"op":"sub","id":1,"topic":"board","delta":"fossil"}`)
	require.Equal(t, "ok", plain.next(t, 1)[0].Op)
	require.Equal(t, "ok", early.next(t, 1)[0].Op)
	for i := range 5 {
		e.publish("board", doc(i))
	}
	early.next(t, 5)
	late := e.connect()
	late.send(`{"op":"sub","id":1,"topic":"board","delta":"fossil"}`)
	require.Equal(t, "ok", late.next(t, 1)[0].Op)
	for i := 5; i < 10; i++ {
		e.publish("board", doc(i))
	}
	plain.next(t, 10)
	early.next(t, 5)
	late.next(t, 5)

	want := make([]string, 10)
	for i := range want {
		want[i] = string(doc(i).Data)
	}
	got, deltas := rebuild(t, early.sess.Frames())
	require.Equal(t, want, got)
	require.Equal(t, 9, deltas, "all but the first came as deltas")
	got, deltas = rebuild(t, late.sess.Frames())
	require.Equal(t, want[5:], got)
	require.Equal(t, 4, deltas)
	got, deltas = rebuild(t, plain.sess.Frames())
	require.Equal(t, want, got)
	require.Zero(t, deltas)
	for _, f := range early.sess.Frames()[2:] {
		require.Less(t, len(f), 200, "a delta of one changed field is small: %s", f)
	}
}

// A delta frame goes only where it is smaller than the data.
func TestDeltaOnlyWhenSmaller(t *testing.T) {
	e := newEnv(t, TopicConfig{})
	c := e.connect()
	c.send(`{"op":"sub","id":1,"topic":"small","delta":"fossil"}`)
	require.Equal(t, "ok", c.next(t, 1)[0].Op)
	for i := range 3 {
		e.publish("small", data(i)) // {"i":N}: nothing to gain
	}
	for _, f := range c.next(t, 3) {
		require.NotContains(t, f.Raw, `"delta"`)
	}
}

// FuzzDeltaFrame: for any two data, the delta frame the relay would send
// (when it sends one) carries a delta that rebuilds the second from the
// first, through the JSON string a client decodes.
func FuzzDeltaFrame(f *testing.F) {
	f.Add([]byte(`{"a":1,"b":"xyz"}`), []byte(`{"a":2,"b":"xyz"}`))
	f.Add(doc(1).Data, doc(2).Data)
	f.Add([]byte(`"héllo wörld, héllo wörld"`), []byte(`"héllo wörld, hallo wörld"`))
	f.Add([]byte(`[]`), []byte(`{"x":"\u0000\"\\"}`))
	f.Fuzz(func(t *testing.T, a, b []byte) {
		delta := fdelta.Create(a, b)
		if !wire.ValidDelta(delta) {
			return // sent whole
		}
		frame := wire.AppendDeltaMsg(nil, "t", "e", 2, 1, delta)
		h, ok := wire.ParseHead(frame)
		if !ok || !h.Delta {
			t.Fatalf("unparsable delta frame %q", frame)
		}
		var s string
		if err := json.Unmarshal(h.Data, &s); err != nil {
			t.Fatalf("delta frame %q: %v", frame, err)
		}
		got, err := fdelta.Apply(a, []byte(s))
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("Apply(%q, delta) = %q, %v; want %q", a, got, err, b)
		}
	})
}

// BenchmarkFanOutDelta publishes a 10 KiB document with one field changed
// per op to subs subscribers, all with deltas or none: the delta is
// computed once per message, so its cost must not grow with subs. bytes/op
// is what the sessions were handed per publish.
func BenchmarkFanOutDelta(b *testing.B) {
	for _, subs := range []int{10, 1000} {
		for _, delta := range []bool{false, true} {
			b.Run(fmt.Sprintf("subs=%d/delta=%v", subs, delta), func(b *testing.B) {
				system := actor.NewActorSystem(actor.WithLoggerFactory(testutil.DiscardActorLogs))
				defer system.Shutdown()
				topics := NewLocalTopics(system, TopicConfig{HistorySize: 100})
				relays := NewRelays(system, topics, RelayConfig{})
				conns := NewConns(system, topics, relays, ConnConfig{})
				var delivered, size atomic.Int64
				sub := `{"op":"sub","id":1,"topic":"bench"}`
				if delta {
					sub = `{"op":"sub","id":1,"topic":"bench","delta":"fossil"}`
				}
				for range subs {
					conns.Accept(&countingSession{n: &delivered, bytes: &size}).HandleFrame([]byte(sub))
				}
				waitFor(b, &delivered, int64(subs))
				delivered.Store(0)
				size.Store(0)
				pid, _ := topics.TopicPID("bench")
				docs := make([][]byte, 64)
				for i := range docs {
					docs[i] = fmt.Appendf(nil, `{"rows":"%s","n":%d}`, strings.Repeat("r", 10<<10), i)
				}
				b.ReportAllocs()
				b.ResetTimer()
				for i := range b.N {
					system.Root.Send(pid, &actorpb.PublishRequest{Topic: "bench", Items: []*actorpb.PublishItem{{Data: docs[i%len(docs)]}}})
				}
				waitFor(b, &delivered, int64(b.N)*int64(subs))
				b.StopTimer()
				b.ReportMetric(float64(size.Load())/float64(b.N), "bytes/op")
				b.ReportMetric(float64(b.N)*float64(subs)/b.Elapsed().Seconds(), "deliveries/s")
			})
		}
	}
}
