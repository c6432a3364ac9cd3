package test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/internal/server"
	"github.com/topicast/topicast/internal/testutil"
	"github.com/topicast/topicast/sdk"
	"github.com/topicast/topicast/sdk/wire"
)

// deltaDocs caches deltaDoc's documents: building one costs more than
// checking it.
var deltaDocs sync.Map

// deltaDoc is a 10 KiB JSON document of which message n changes one field.
func deltaDoc(n int) []byte {
	if d, ok := deltaDocs.Load(n); ok {
		return d.([]byte)
	}
	d := buildDeltaDoc(n)
	deltaDocs.Store(n, d)
	return d
}

func buildDeltaDoc(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"rows":[`)
	for i := range 100 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":%d,"name":"row %03d","value":%d,"note":"%s"}`, i, i, i*7, strings.Repeat("-", 50))
	}
	fmt.Fprintf(&b, `],"n":%d}`, n)
	return b.Bytes()
}

// deltaClients are SDK clients subscribed to one topic that check every
// message's data byte for byte against deltaDoc.
type deltaClients struct {
	mu   sync.Mutex
	got  map[*sdk.Client]int
	bad  []string
	done chan struct{}
	want int
}

func (d *deltaClients) handler(c **sdk.Client, first int) func(sdk.Message) {
	return func(m sdk.Message) {
		d.mu.Lock()
		defer d.mu.Unlock()
		if want := deltaDoc(first + int(m.Seq) - 1); !bytes.Equal(m.Data, want) && len(d.bad) < 5 {
			d.bad = append(d.bad, fmt.Sprintf("seq %d: %.80s...", m.Seq, m.Data))
		}
		if d.got[*c]++; d.got[*c] == d.want {
			d.done <- struct{}{}
		}
	}
}

// publishDocs publishes deltaDoc(from) to deltaDoc(to-1) to topic, 100 per
// request, and returns the topic's epoch.
func publishDocs(t *testing.T, srv *server.Server, topic string, from, to int) (epoch string) {
	t.Helper()
	for i := from; i < to; i += 100 {
		var items []string
		for n := i; n < min(i+100, to); n++ {
			items = append(items, fmt.Sprintf(`{"topic":%q,"data":%s}`, topic, deltaDoc(n)))
		}
		status, body := post(t, srv, `{"messages":[`+join(items)+`]}`)
		require.Equal(t, http.StatusOK, status, "%s", body)
		var out struct{ Results []wire.PublishResult }
		require.NoError(t, json.Unmarshal(body, &out))
		epoch = out.Results[0].Epoch
	}
	return epoch
}

// A 10 KiB document with one field changed per message, 1,000 messages, 100
// SDK subscribers with Config.Delta: every subscriber rebuilds every message
// byte-exact, and the server writes at least 10 times fewer bytes than the
// same messages whole would take. A subscriber that recovers with Since
// restarts from whole messages and goes on with deltas.
func TestDeltaSubscribersRebuildEveryMessage(t *testing.T) {
	testutil.SkipIfShort(t)
	srv := startServer(t, server.Config{StatsInterval: -1, PublishRate: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	metrics := &srv.Node().NodeState().Metrics

	const subs, msgs = 100, 1000
	d := &deltaClients{got: make(map[*sdk.Client]int), done: make(chan struct{}, subs+1), want: msgs}
	for range subs {
		c := new(*sdk.Client)
		cl, err := sdk.Dial(ctx, wsURL(srv), sdk.Config{Delta: true})
		require.NoError(t, err)
		t.Cleanup(func() { _ = cl.Close() })
		*c = cl
		_, err = cl.Subscribe(ctx, "board", d.handler(c, 0))
		require.NoError(t, err)
	}
	before := metrics.BytesWritten.Load()
	epoch := publishDocs(t, srv, "board", 0, msgs)
	for range subs {
		select {
		case <-d.done:
		case <-ctx.Done():
			t.Fatalf("not every subscriber got %d messages: %v", msgs, d.got)
		}
	}
	written := metrics.BytesWritten.Load() - before
	var whole int
	for n := range msgs {
		whole += len(wire.AppendMsg(nil, "board", epoch, uint64(n+1), time.Now().UnixMilli(), deltaDoc(n)))
	}
	whole *= subs
	d.mu.Lock()
	require.Empty(t, d.bad, "messages rebuilt wrong")
	d.mu.Unlock()
	t.Logf("%d subscribers x %d messages of %d bytes: %d bytes written with deltas, %d whole (%.1fx), %d saved",
		subs, msgs, len(deltaDoc(0)), written, whole, float64(whole)/float64(written), metrics.DeltaBytesSaved.Load())
	require.Less(t, written*10, uint64(whole), "deltas must cut the bytes written tenfold")

	// A subscriber recovering from seq 500 gets 501..1000 whole from the
	// history, then deltas again for what comes live.
	rd := &deltaClients{got: make(map[*sdk.Client]int), done: make(chan struct{}, 1), want: msgs - 500 + 100}
	c := new(*sdk.Client)
	cl, err := sdk.Dial(ctx, wsURL(srv), sdk.Config{Delta: true})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close() })
	*c = cl
	_, err = cl.Subscribe(ctx, "board", rd.handler(c, 0), sdk.Since(epoch, 500))
	require.NoError(t, err)
	savedBefore := metrics.DeltaBytesSaved.Load()
	publishDocs(t, srv, "board", msgs, msgs+100)
	select {
	case <-rd.done:
	case <-ctx.Done():
		t.Fatalf("the recovering subscriber got %v", rd.got)
	}
	rd.mu.Lock()
	require.Empty(t, rd.bad, "messages rebuilt wrong after recovery")
	rd.mu.Unlock()
	require.Greater(t, metrics.DeltaBytesSaved.Load(), savedBefore)
}
