package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/topicast/topicast/sdk"
	"github.com/topicast/topicast/sdk/wire"
)

// DefaultInfoURL is where sub reads a loopback WebTransport server's
// certificate hash when --cert-hash is not given.
const DefaultInfoURL = "http://127.0.0.1:8080/v1/info"

// subFlushDelay bounds how long a printed message may wait in the output
// buffer.
const subFlushDelay = 10 * time.Millisecond

func runSub(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseSubArgs(args, stderr)
	if err != nil {
		return err
	}
	p := newSubPrinter(stdout, stderr, o.count, o.since != nil)
	defer p.flush()
	cfg, err := o.clientConfig(ctx, p)
	if err != nil {
		return err
	}
	c, err := sdk.Dial(ctx, o.server, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("connect to %s: %w", o.server, err)
	}
	defer c.Close()
	if err := o.subscribeAll(ctx, c, p); err != nil {
		return err
	}
	return waitSub(ctx, c, p)
}

// subArgs is what sub's command line asks for.
type subArgs struct {
	server   string
	url      *url.URL
	topics   []string
	since    *wire.Position // nil: no recovery
	count    int
	token    string
	certHash string
	info     string
	datagram bool
	// presence asks for the topics' presence events; enter, when
	// entered is set, is the JSON info to enter every topic with.
	presence bool
	enter    json.RawMessage
	entered  bool
}

// webTransport reports whether the server URL is a WebTransport one.
func (o *subArgs) webTransport() bool { return o.url.Scheme == "https" }

// parseSubArgs parses and checks sub's flags and topics; usage errors are
// *exitError with status 2.
func parseSubArgs(args []string, stderr io.Writer) (*subArgs, error) {
	fs := flag.NewFlagSet("topicast sub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := &subArgs{}
	fs.StringVar(&o.server, "server", "ws://127.0.0.1:8080/ws",
		"server URL: ws://HOST:PORT/ws (WebSocket) or https://HOST:PORT/wt (WebTransport)")
	since := fs.String("since", "", "EPOCH:SEQ: recover the messages after SEQ (for every topic)")
	fs.IntVar(&o.count, "count", 0, "exit after this many messages (0: run until interrupted)")
	fs.StringVar(&o.token, "token", "", "token, if the server requires one")
	fs.StringVar(&o.certHash, "cert-hash", "",
		"WebTransport: hex SHA-256 of the server's certificate (default: read from --info when the host is loopback)")
	fs.StringVar(&o.info, "info", DefaultInfoURL,
		"WebTransport: the server's /v1/info, read for the certificate hash when --cert-hash is empty and the host is loopback")
	fs.BoolVar(&o.datagram, "datagram", false,
		"WebTransport: receive the messages as datagrams (newest value first, some may be lost; no recovery)")
	fs.BoolVar(&o.presence, "presence", false,
		"also print the topics' presence events on stdout, one line each: join|update|leave TOPIC CLIENT CONN [INFO]")
	fs.Func("enter", "enter every topic as a presence member with this JSON info (null: none)", func(v string) error {
		if !json.Valid([]byte(v)) {
			return fmt.Errorf("%q is not JSON", v)
		}
		o.enter, o.entered = json.RawMessage(v), true
		return nil
	})
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: topicast sub [flags] TOPIC...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	o.topics = fs.Args()
	if len(o.topics) == 0 {
		fs.Usage()
		return nil, &exitError{2, errors.New("sub needs at least one TOPIC")}
	}
	if err := o.check(*since); err != nil {
		return nil, err
	}
	return o, nil
}

// check validates the topics, parses since (EPOCH:SEQ, "" for none) and the
// server URL, and refuses flags that do not combine.
func (o *subArgs) check(since string) error {
	for _, t := range o.topics {
		if err := wire.ValidateTopic(t); err != nil {
			return err
		}
	}
	if since != "" {
		epoch, seqStr, ok := strings.Cut(since, ":")
		seq, err := strconv.ParseUint(seqStr, 10, 64)
		if !ok || epoch == "" || err != nil {
			return &exitError{2, fmt.Errorf("--since must be EPOCH:SEQ, got %q", since)}
		}
		o.since = &wire.Position{Epoch: epoch, Seq: seq}
	}
	if o.count < 0 {
		return &exitError{2, fmt.Errorf("--count must not be negative, got %d", o.count)}
	}
	u, err := url.Parse(o.server)
	if err != nil {
		return &exitError{2, fmt.Errorf("--server: %w", err)}
	}
	o.url = u
	if o.datagram && !o.webTransport() {
		return &exitError{2, errors.New("--datagram needs a WebTransport server URL (https://HOST:PORT/wt)")}
	}
	if o.datagram && o.since != nil {
		return &exitError{2, errors.New("--datagram and --since do not combine: datagram subscriptions do not recover")}
	}
	return nil
}

// clientConfig returns the SDK config of sub: p prints the events, the
// token is the one given, and a WebTransport server's certificate hash is
// read from --info when not given and the server is on loopback.
func (o *subArgs) clientConfig(ctx context.Context, p *subPrinter) (sdk.Config, error) {
	cfg := sdk.Config{KeepFrames: true, OnEvent: p.onEvent}
	if o.token != "" {
		tok := o.token
		cfg.Token = func(context.Context) (string, error) { return tok, nil }
	}
	if !o.webTransport() {
		return cfg, nil
	}
	cfg.CertHash = o.certHash
	if cfg.CertHash == "" && isLoopback(o.url.Hostname()) {
		var err error
		if cfg.CertHash, err = fetchCertHash(ctx, o.info); err != nil {
			return cfg, fmt.Errorf("read the certificate hash from %s: %w (pass --cert-hash, or --info with the server's HTTP address)", o.info, err)
		}
	}
	return cfg, nil
}

// subscribeAll subscribes c to every topic, printing with p. A cancelled
// ctx is no error.
func (o *subArgs) subscribeAll(ctx context.Context, c *sdk.Client, p *subPrinter) error {
	var opts []sdk.SubOption
	if o.since != nil {
		opts = append(opts, sdk.Since(o.since.Epoch, o.since.Seq))
	}
	if o.datagram {
		opts = append(opts, sdk.Datagram())
	}
	if o.presence {
		opts = append(opts, sdk.Presence())
	}
	for _, t := range o.topics {
		s, err := c.Subscribe(ctx, t, p.onMessage, opts...)
		if err == nil && o.entered {
			err = s.Enter(ctx, o.enter)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return describeSubError(err)
		}
	}
	return nil
}

// waitSub waits for the end of sub: interrupted, --count messages printed,
// a failure reported by p, or the connection gone for good.
func waitSub(ctx context.Context, c *sdk.Client, p *subPrinter) error {
	select {
	case <-ctx.Done():
		return nil
	case <-p.done:
		return nil
	case err := <-p.failed:
		return err
	case <-c.Done():
		return describeSubError(c.Err())
	}
}

// describeSubError words the errors that end sub.
func describeSubError(err error) error {
	var we *wire.Error
	if errors.As(err, &we) {
		return fmt.Errorf("server error %s: %s", we.Code, we.Message)
	}
	var ce *sdk.CloseError
	if errors.As(err, &ce) {
		return fmt.Errorf("server closed the connection: %d %s", uint16(ce.Code), ce.Reason)
	}
	return err
}

// subPrinter prints what a sub receives. Its onMessage and onEvent run on
// the client's dispatcher goroutine, one at a time.
type subPrinter struct {
	stderr io.Writer
	count  int
	since  bool
	// done is closed after count messages; failed gets the error that
	// ends sub.
	done   chan struct{}
	failed chan error

	// Owned by the dispatcher goroutine.
	got       int
	announced map[string]bool
	// skipReset marks topics whose "subscribed" line already said that
	// the recovery failed: the reset event that follows is not printed.
	skipReset map[string]bool
	// live is set once a subscription is confirmed on the connection, so
	// that failed reconnection attempts print one line, not one each.
	live bool

	// Guarded by mu.
	mu      sync.Mutex
	out     *bufio.Writer
	pending bool // a flush is scheduled
}

func newSubPrinter(stdout, stderr io.Writer, count int, since bool) *subPrinter {
	return &subPrinter{
		stderr:    stderr,
		count:     count,
		since:     since,
		done:      make(chan struct{}),
		failed:    make(chan error, 1),
		announced: make(map[string]bool),
		skipReset: make(map[string]bool),
		out:       bufio.NewWriterSize(stdout, 64<<10),
	}
}

// onMessage prints the msg frame as the server sent it, on one line.
func (p *subPrinter) onMessage(m sdk.Message) {
	if p.count > 0 && p.got >= p.count {
		return
	}
	p.print(m.Frame)
	p.got++
	if p.count > 0 && p.got == p.count {
		p.flush()
		close(p.done)
	}
}

// print writes line and a newline to the output buffer, flushed within
// subFlushDelay.
func (p *subPrinter) print(line []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out.Write(line)
	p.out.WriteByte('\n')
	if !p.pending {
		p.pending = true
		time.AfterFunc(subFlushDelay, p.flush)
	}
}

// flush writes the buffered messages out.
func (p *subPrinter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pending = false
	if err := p.out.Flush(); err != nil {
		p.fail(fmt.Errorf("write the messages: %w", err))
	}
}

// note prints a line on stderr, after the messages printed before it.
func (p *subPrinter) note(format string, args ...any) {
	p.flush()
	fmt.Fprintf(p.stderr, format+"\n", args...)
}

func (p *subPrinter) fail(err error) {
	select {
	case p.failed <- err:
	default:
	}
}

func (p *subPrinter) onEvent(e sdk.Event) {
	switch e.Kind {
	case sdk.EventSubscribed:
		p.live = true
		if p.announced[e.Topic] {
			return
		}
		p.announced[e.Topic] = true
		if p.since && !e.Recovered {
			p.skipReset[e.Topic] = true
			p.note("subscribed %s %s %d (not recovered: messages were missed)", e.Topic, e.Epoch, e.Seq)
			return
		}
		p.note("subscribed %s %s %d", e.Topic, e.Epoch, e.Seq)
	case sdk.EventReset:
		if p.skipReset[e.Topic] && e.Reason == sdk.ResetNotRecovered {
			delete(p.skipReset, e.Topic)
			return
		}
		delete(p.skipReset, e.Topic)
		p.note("reset %s %s %d (the topic lost continuity)", e.Topic, e.Epoch, e.Seq)
	case sdk.EventGap:
		p.note("gap %s %s %d (the server skipped messages after it)", e.Topic, e.Epoch, e.Seq)
	case sdk.EventDisconnected:
		if p.live {
			p.live = false
			p.note("disconnected: %v (reconnecting)", e.Err)
		}
	case sdk.EventJoin, sdk.EventUpdate, sdk.EventLeave:
		// On stdout with the messages, in the order they came.
		p.print([]byte(e.String()))
	case sdk.EventSubscriptionEnded, sdk.EventError, sdk.EventClosed:
		p.fail(describeSubError(e.Err))
	}
}

// isLoopback reports whether host is localhost or a loopback address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// fetchCertHash reads webtransport.certHash from a server's /v1/info. It
// answers "" for a server whose certificate was configured (no hash).
func fetchCertHash(ctx context.Context, infoURL string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, infoURL, nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var body struct {
		WebTransport *struct {
			CertHash string `json:"certHash"`
		} `json:"webtransport"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return "", fmt.Errorf("decode the answer: %w", err)
	}
	if body.WebTransport == nil {
		return "", errors.New("the server has no WebTransport")
	}
	return body.WebTransport.CertHash, nil
}
