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
	"github.com/topicast/topicast/transport/wire"
)

// DefaultInfoURL is where sub reads a loopback WebTransport server's
// certificate hash when --cert-hash is not given.
const DefaultInfoURL = "http://127.0.0.1:8080/v1/info"

// subFlushDelay bounds how long a printed message may wait in the output
// buffer.
const subFlushDelay = 10 * time.Millisecond

func runSub(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("topicast sub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "ws://127.0.0.1:8080/ws",
		"server URL: ws://HOST:PORT/ws (WebSocket) or https://HOST:PORT/wt (WebTransport)")
	since := fs.String("since", "", "EPOCH:SEQ: recover the messages after SEQ (for every topic)")
	count := fs.Int("count", 0, "exit after this many messages (0: run until interrupted)")
	token := fs.String("token", "", "token, if the server requires one")
	certHash := fs.String("cert-hash", "",
		"WebTransport: hex SHA-256 of the server's certificate (default: read from --info when the host is loopback)")
	info := fs.String("info", DefaultInfoURL,
		"WebTransport: the server's /v1/info, read for the certificate hash when --cert-hash is empty and the host is loopback")
	datagram := fs.Bool("datagram", false,
		"WebTransport: receive the messages as datagrams (newest value first, some may be lost; no recovery)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: topicast sub [flags] TOPIC...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	topics := fs.Args()
	if len(topics) == 0 {
		fs.Usage()
		return &exitError{2, errors.New("sub needs at least one TOPIC")}
	}
	for _, t := range topics {
		if err := wire.ValidateTopic(t); err != nil {
			return err
		}
	}
	var sincePos *wire.Position
	if *since != "" {
		epoch, seqStr, ok := strings.Cut(*since, ":")
		seq, err := strconv.ParseUint(seqStr, 10, 64)
		if !ok || epoch == "" || err != nil {
			return &exitError{2, fmt.Errorf("--since must be EPOCH:SEQ, got %q", *since)}
		}
		sincePos = &wire.Position{Epoch: epoch, Seq: seq}
	}
	if *count < 0 {
		return &exitError{2, fmt.Errorf("--count must not be negative, got %d", *count)}
	}
	u, err := url.Parse(*server)
	if err != nil {
		return &exitError{2, fmt.Errorf("--server: %w", err)}
	}
	webTransport := u.Scheme == "https"
	if *datagram && !webTransport {
		return &exitError{2, errors.New("--datagram needs a WebTransport server URL (https://HOST:PORT/wt)")}
	}
	if *datagram && sincePos != nil {
		return &exitError{2, errors.New("--datagram and --since do not combine: datagram subscriptions do not recover")}
	}

	p := newSubPrinter(stdout, stderr, *count, sincePos != nil)
	defer p.flush()
	cfg := sdk.Config{KeepFrames: true, OnEvent: p.onEvent}
	if *token != "" {
		tok := *token
		cfg.Token = func(context.Context) (string, error) { return tok, nil }
	}
	if webTransport {
		cfg.CertHash = *certHash
		if cfg.CertHash == "" && isLoopback(u.Hostname()) {
			if cfg.CertHash, err = fetchCertHash(ctx, *info); err != nil {
				return fmt.Errorf("read the certificate hash from %s: %w (pass --cert-hash, or --info with the server's HTTP address)", *info, err)
			}
		}
	}

	c, err := sdk.Dial(ctx, *server, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("connect to %s: %w", *server, err)
	}
	defer c.Close()

	var opts []sdk.SubOption
	if sincePos != nil {
		opts = append(opts, sdk.Since(sincePos.Epoch, sincePos.Seq))
	}
	if *datagram {
		opts = append(opts, sdk.Datagram())
	}
	for _, t := range topics {
		if _, err := c.Subscribe(ctx, t, p.onMessage, opts...); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return describeSubError(err)
		}
	}
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
	p.mu.Lock()
	p.out.Write(m.Frame)
	p.out.WriteByte('\n')
	if !p.pending {
		p.pending = true
		time.AfterFunc(subFlushDelay, p.flush)
	}
	p.mu.Unlock()
	p.got++
	if p.count > 0 && p.got == p.count {
		p.flush()
		close(p.done)
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
