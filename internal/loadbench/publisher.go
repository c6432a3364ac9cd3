package loadbench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"
)

// maxAnswer bounds how much of a publish answer is read: an answer is a few
// dozen bytes, an error body a few hundred.
const maxAnswer = 64 << 10

// publisher sends the scheduled messages over POST /v1/publish. Its
// goroutines share one ticket counter, so a goroutine stuck on a slow request
// leaves its next messages to the others instead of delaying them.
//
// Message n is due at start + n/Rate and carries that due time, not the time
// it was actually sent: when the publishers fall behind, the delay counts in
// the latency, as a real producer's users would feel it (no coordinated
// omission).
type publisher struct {
	cfg       *Config
	client    *http.Client
	endpoints []string // publisher goroutine k posts to endpoints[k%len]
	topics    []string
	errs      *errorLog

	start    time.Time
	interval float64 // nanoseconds between two messages
	total    int64   // messages due within Duration
	hardEnd  time.Time

	next      atomic.Int64    // next ticket
	attempted atomic.Int64    // tickets sent, answered or not
	failed    atomic.Int64    // publishes without a seq in the answer
	published []atomic.Int64  // answered publishes, by topic
	lastSeq   []atomic.Uint64 // highest seq answered, by topic
}

func newPublisher(cfg *Config, topics []string, errs *errorLog) *publisher {
	bases := cfg.publishURLs
	if len(bases) == 0 {
		bases = []string{cfg.PublishURL}
	}
	endpoints := make([]string, len(bases))
	for i, b := range bases {
		endpoints[i] = publishEndpoint(b)
	}
	transport := &http.Transport{
		// Proxies from the environment would only distort the numbers.
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: cfg.RequestTimeout}).DialContext,
		MaxIdleConnsPerHost: cfg.Publishers,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	return &publisher{
		cfg:       cfg,
		client:    &http.Client{Transport: transport, Timeout: cfg.RequestTimeout},
		endpoints: endpoints,
		topics:    topics,
		errs:      errs,
		interval:  float64(time.Second) / cfg.Rate,
		total:     int64(cfg.Rate * cfg.Duration.Seconds()),
		published: make([]atomic.Int64, len(topics)),
		lastSeq:   make([]atomic.Uint64, len(topics)),
	}
}

// run is publisher goroutine k: it publishes to its node's endpoint until
// every message due within Duration was sent, ctx is done, or hardEnd
// passed: publishers that far behind would only keep the run going, and
// what they did not send is reported as unsent.
func (p *publisher) run(ctx context.Context, k int) {
	endpoint := p.endpoints[k%len(p.endpoints)]
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	body := make([]byte, 0, p.cfg.Size+64)
	var answer bytes.Buffer
	for {
		n := p.next.Add(1) - 1
		if n >= p.total {
			return
		}
		due := p.start.Add(time.Duration(float64(n) * p.interval))
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		}
		if ctx.Err() != nil || time.Now().After(p.hardEnd) {
			return
		}
		topic := int(n % int64(len(p.topics)))
		body = appendPublishBody(body[:0], p.topics[topic], due.UnixNano(), p.cfg.Size)
		p.attempted.Add(1)
		seq, err := p.publish(ctx, endpoint, body, &answer)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.failed.Add(1)
			p.errs.add(fmt.Errorf("publish: %w", err))
			continue
		}
		p.published[topic].Add(1)
		for last := &p.lastSeq[topic]; ; {
			old := last.Load()
			if seq <= old || last.CompareAndSwap(old, seq) {
				break
			}
		}
	}
}

// publish sends one body to endpoint and returns the seq of the answer.
func (p *publisher) publish(ctx context.Context, endpoint string, body []byte, answer *bytes.Buffer) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if p.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+p.cfg.APIKey)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	answer.Reset()
	// Reading to the end lets the connection be reused.
	if _, err := answer.ReadFrom(io.LimitReader(resp.Body, maxAnswer)); err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", resp.Status, bytes.TrimSpace(answer.Bytes()))
	}
	seq, ok := uintAfter(answer.Bytes(), keySeq)
	if !ok || seq == 0 {
		return 0, errors.New("answer without seq: " + string(bytes.TrimSpace(answer.Bytes())))
	}
	return seq, nil
}

// publishedTotal returns the answered publishes so far.
func (p *publisher) publishedTotal() int64 {
	var n int64
	for i := range p.published {
		n += p.published[i].Load()
	}
	return n
}

func (p *publisher) close() { p.client.CloseIdleConnections() }

// appendPublishBody appends the single-message form of a publish body.
func appendPublishBody(dst []byte, topic string, sentNanos int64, size int) []byte {
	dst = append(dst, `{"topic":"`...)
	dst = append(dst, topic...)
	dst = append(dst, `","data":`...)
	dst = appendData(dst, sentNanos, size)
	return append(dst, '}')
}
