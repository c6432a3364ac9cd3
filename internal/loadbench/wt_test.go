package loadbench

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/topicast/topicast/sdk/wire"
)

func TestRunWebTransportNoEndpoint(t *testing.T) {
	// An HTTP server without WebTransport is not needed: a closed port
	// fails the /v1/info request before anything else.
	rep, err := Run(context.Background(), Config{Transport: TransportWebTransport, URL: "ws://" + freeAddr(t) + "/ws", RequestTimeout: 2 * time.Second})
	if err == nil || rep != nil || !strings.Contains(err.Error(), "/v1/info") {
		t.Fatalf("Run = %+v, %v; want an error about /v1/info", rep, err)
	}
}

func TestConfigWebTransport(t *testing.T) {
	c := Config{Transport: TransportWebTransport}.withDefaults()
	if err := c.validate(); err != nil || c.DialConcurrency != DefaultWTDialConcurrency {
		t.Fatalf("defaults: %v, dial concurrency %d", err, c.DialConcurrency)
	}
	for name, c := range map[string]Config{
		"transport": {Transport: "quic"},
		"wt url":    {Transport: TransportWebTransport, WTURL: "http://127.0.0.1:4433/wt"},
		"cert hash": {Transport: TransportWebTransport, CertHash: "abcd"},
	} {
		if err := c.withDefaults().validate(); err == nil {
			t.Errorf("%s: %+v validates", name, c)
		}
	}
	ok := Config{Transport: TransportWebTransport, WTURL: "https://h:1/wt", CertHash: strings.Repeat("AB:", 31) + "AB"}
	if err := ok.withDefaults().validate(); err != nil {
		t.Errorf("%+v: %v", ok, err)
	}
	for base, want := range map[string]string{
		"http://h:1":             "http://h:1/v1/info",
		"http://h:1/v1/publish/": "http://h:1/v1/info",
	} {
		if got := infoEndpoint(base); got != want {
			t.Errorf("infoEndpoint(%q) = %q, want %q", base, got, want)
		}
	}
	if got := withToken("https://h:1/wt", "a+b"); got != "https://h:1/wt?token=a%2Bb" {
		t.Errorf("withToken = %q", got)
	}
}

func TestConfigWebRTC(t *testing.T) {
	c := Config{Transport: TransportWebRTC}.withDefaults()
	if err := c.validate(); err != nil || c.DialConcurrency != DefaultRTCDialConcurrency {
		t.Fatalf("defaults: %v, dial concurrency %d", err, c.DialConcurrency)
	}
	for _, u := range []string{"ws://127.0.0.1:8080/v1/webrtc", "http:///v1/webrtc", "://x"} {
		if err := (Config{Transport: TransportWebRTC, WebRTCURL: u}).withDefaults().validate(); err == nil {
			t.Errorf("webrtc url %q validates", u)
		}
	}
	ok := Config{Transport: TransportWebRTC, WebRTCURL: "https://h:1/v1/webrtc"}
	if err := ok.withDefaults().validate(); err != nil {
		t.Errorf("%+v: %v", ok, err)
	}
	// Without an endpoint, /v1/info must tell it: a closed port fails.
	rep, err := Run(context.Background(), Config{Transport: TransportWebRTC, URL: "ws://" + freeAddr(t) + "/ws", RequestTimeout: 2 * time.Second})
	if err == nil || rep != nil || !strings.Contains(err.Error(), "/v1/info") {
		t.Fatalf("Run = %+v, %v; want an error about /v1/info", rep, err)
	}
}

// TestLineReader reads NDJSON cut into reads every which way: several
// lines to a read, lines split across reads, empty lines, and a last
// unfinished line before the end.
func TestLineReader(t *testing.T) {
	const stream = "{\"a\":1}\n{\"b\":2}\n\n{\"c\":333333333333}\n{\"d\":4}\npartial"
	for name, src := range map[string]io.Reader{
		"whole":    strings.NewReader(stream),
		"bytes":    iotest.OneByteReader(strings.NewReader(stream)),
		"halves":   iotest.HalfReader(strings.NewReader(stream)),
		"data+eof": iotest.DataErrReader(strings.NewReader(stream)),
	} {
		r := lineReader{src: src, max: 1 << 10}
		var frames []string
		var err error
		for {
			var b []byte
			if b, err = r.read(); err != nil {
				break
			}
			if len(b) == 0 || b[len(b)-1] != '\n' {
				t.Fatalf("%s: read returned %q, not whole lines", name, b)
			}
			wire.EachFrame(b, func(f []byte) { frames = append(frames, string(f)) })
		}
		if err != io.EOF || strings.Join(frames, " ") != `{"a":1} {"b":2} {"c":333333333333} {"d":4}` {
			t.Errorf("%s: frames %q, end %v", name, frames, err)
		}
	}

	long := strings.Repeat("x", 100) + "\n"
	r := lineReader{src: strings.NewReader(long + long), max: 64}
	if _, err := r.read(); !errors.Is(err, errLineTooLong) {
		t.Errorf("a line over max: %v", err)
	}
	r = lineReader{src: strings.NewReader(long + long), max: 1 << 10}
	if b, err := r.read(); err != nil || string(b) != long+long {
		t.Errorf("lines longer than the initial buffer: %q, %v", b, err)
	}
}

// fakeStream records what a subscriber writes on its WebTransport stream.
type fakeStream struct{ bytes.Buffer }

func (*fakeStream) SetDeadline(time.Time) error      { return nil }
func (*fakeStream) SetReadDeadline(time.Time) error  { return nil }
func (*fakeStream) SetWriteDeadline(time.Time) error { return nil }

// TestHandleFramePingWT checks that a protocol ping over WebTransport is
// answered with a pong line.
func TestHandleFramePingWT(t *testing.T) {
	str := new(fakeStream)
	s := &subscriber{wt: &wtLink{str: str}}
	s.handleFrame(wire.PingFrame)
	if got := str.String(); got != string(wire.PongFrame)+"\n" {
		t.Fatalf("answer %q, want %q", got, string(wire.PongFrame)+"\n")
	}
}
