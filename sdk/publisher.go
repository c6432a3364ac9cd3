package sdk

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/topicast/topicast/sdk/wire"
)

// Defaults of PublisherConfig.
const (
	DefaultPublishTimeout  = 10 * time.Second
	DefaultPublishAttempts = 5
	DefaultPublishMinWait  = 100 * time.Millisecond
	DefaultPublishMaxWait  = 5 * time.Second
	DefaultBatchDelay      = 5 * time.Millisecond
	DefaultMaxBatchBytes   = 1 << 20
	// maxRetryAfter bounds how long a Retry-After header makes a retry wait.
	maxRetryAfter = time.Minute
	// maxErrorBody bounds the error body read from the server.
	maxErrorBody = 64 << 10
)

// PublisherConfig configures a Publisher. Zero values mean the defaults.
type PublisherConfig struct {
	// APIKey is sent as "Authorization: Bearer <APIKey>" when set.
	APIKey string
	// HTTPClient sends the requests; nil means a client of the Publisher's
	// own, whose idle connections Close closes.
	HTTPClient *http.Client
	// Timeout bounds one HTTP attempt. Zero means DefaultPublishTimeout.
	Timeout time.Duration
	// MaxAttempts bounds the attempts of one publish (retries happen on
	// network errors and on 408, 429 and 5xx answers). Zero means
	// DefaultPublishAttempts; 1 or a negative value disables retries.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the wait between attempts (full
	// jitter, as Config's). A Retry-After header, when longer, wins. Zero
	// means DefaultPublishMinWait and DefaultPublishMaxWait.
	MinBackoff time.Duration
	MaxBackoff time.Duration
	// BatchSize, above 1, turns batching on: Publish calls are gathered
	// into one request of up to BatchSize messages (at most wire.MaxBatch),
	// sent when full, when MaxBatchBytes is reached, or BatchDelay after its
	// first message. Batches are sent one at a time, in order. Zero or 1
	// sends each Publish at once in its own request.
	BatchSize int
	// BatchDelay is how long a batch waits to fill. Zero means
	// DefaultBatchDelay.
	BatchDelay time.Duration
	// MaxBatchBytes bounds the data of one batch in bytes. Zero means
	// DefaultMaxBatchBytes.
	MaxBatchBytes int
	// MaxMessage is the largest data in compacted bytes, checked before
	// sending (set it to the server's --max-message). Zero means
	// DefaultMaxMessage; negative disables the check.
	MaxMessage int
	// Logger receives debug logs of retries; nil discards.
	Logger *slog.Logger
}

func (c PublisherConfig) withDefaults() PublisherConfig {
	if c.Timeout == 0 {
		c.Timeout = DefaultPublishTimeout
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = DefaultPublishAttempts
	}
	if c.MaxAttempts < 1 {
		c.MaxAttempts = 1
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultPublishMinWait
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultPublishMaxWait
	}
	c.BatchSize = min(c.BatchSize, wire.MaxBatch)
	if c.BatchDelay == 0 {
		c.BatchDelay = DefaultBatchDelay
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if c.MaxMessage == 0 {
		c.MaxMessage = DefaultMaxMessage
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Publisher publishes messages for services over HTTP (POST /v1/publish).
// Every message carries a random idempotency key, so that a retry after a
// lost answer never publishes twice (the server remembers keys for 2
// minutes). Its methods are goroutine-safe.
type Publisher struct {
	cfg      PublisherConfig
	endpoint string
	client   *http.Client
	// own is the transport of a client the Publisher made, nil otherwise.
	own *http.Transport

	// Batching only.
	in        chan *pubItem
	closing   chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup // the batch loop
}

// pubItem is one message waiting in a batch.
type pubItem struct {
	ctx   context.Context
	topic string
	data  []byte
	key   string
	done  chan pubResult // buffered, receives once
}

type pubResult struct {
	res wire.PublishResult
	err error
}

// NewPublisher returns a publisher to the server at baseURL (such as
// "http://127.0.0.1:8080"). Close it to stop its batching goroutine and
// close its idle connections.
func NewPublisher(baseURL string, cfg PublisherConfig) (*Publisher, error) {
	u, err := url.Parse(baseURL)
	if err != nil {
		return nil, fmt.Errorf("topicast: publisher URL %q: %w", baseURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("topicast: publisher URL %q: want http(s)://host[:port]", baseURL)
	}
	cfg = cfg.withDefaults()
	if cfg.MinBackoff < 0 || cfg.MaxBackoff < cfg.MinBackoff || cfg.Timeout < 0 || cfg.BatchDelay < 0 {
		return nil, errors.New("topicast: publisher config: negative duration, or MinBackoff over MaxBackoff")
	}
	p := &Publisher{
		cfg:      cfg,
		endpoint: strings.TrimSuffix(u.String(), "/") + "/v1/publish",
		client:   cfg.HTTPClient,
		closing:  make(chan struct{}),
	}
	if p.client == nil {
		p.own = http.DefaultTransport.(*http.Transport).Clone()
		p.own.MaxIdleConnsPerHost = 16
		p.client = &http.Client{Transport: p.own}
	}
	if cfg.BatchSize > 1 {
		p.in = make(chan *pubItem)
		p.wg.Add(1)
		go p.batchLoop()
	}
	return p, nil
}

// Close sends what is waiting in a batch (waiting for its answer, which
// Timeout and MaxAttempts bound), stops the batching goroutine and closes
// idle connections. Publish fails with ErrClosed afterwards.
func (p *Publisher) Close() error {
	p.closeOnce.Do(func() {
		close(p.closing)
		p.wg.Wait()
		if p.own != nil {
			p.own.CloseIdleConnections()
		}
	})
	return nil
}

// Publish publishes data to topic and returns where it landed. data is
// encoded with encoding/json, except json.RawMessage and []byte, which must
// hold JSON already. It retries on network errors and 408/429/5xx answers
// with the same idempotency key, so the message is published at most once.
//
// Errors from the server are *wire.Error (match them with errors.As): for a
// batch, the first bad message decides the error of the whole batch, so
// Publish checks topics and sizes before sending. With batching, a message
// whose ctx ended before its batch was sent is left out of it; once the
// batch is on its way, ending ctx only stops the wait for the answer.
func (p *Publisher) Publish(ctx context.Context, topic string, data any) (wire.PublishResult, error) {
	return p.PublishKey(ctx, topic, "", data)
}

// PublishKey is Publish with the caller's idempotency key (at most
// wire.MaxKeyLen bytes), for a caller that retries on its own: the same key
// on the same topic within 2 minutes publishes once. An empty key means a
// random one.
func (p *Publisher) PublishKey(ctx context.Context, topic, key string, data any) (wire.PublishResult, error) {
	select {
	case <-p.closing:
		return wire.PublishResult{}, ErrClosed
	default:
	}
	if err := wire.ValidateTopic(topic); err != nil {
		return wire.PublishResult{}, err
	}
	if wire.IsSystemTopic(topic) {
		return wire.PublishResult{}, wire.Errorf(wire.CodeForbidden, "only the server publishes to %s topics", wire.SystemPrefix)
	}
	if len(key) > wire.MaxKeyLen {
		return wire.PublishResult{}, wire.Errorf(wire.CodeBadRequest, "key is longer than %d bytes", wire.MaxKeyLen)
	}
	raw, err := encodeData(data, p.cfg.MaxMessage)
	if err != nil {
		return wire.PublishResult{}, err
	}
	if key == "" {
		key = newKey()
	}
	it := &pubItem{ctx: ctx, topic: topic, data: raw, key: key, done: make(chan pubResult, 1)}
	if p.in == nil {
		res, err := p.send(ctx, []*pubItem{it}, false)
		if err != nil {
			return wire.PublishResult{}, err
		}
		return res[0], nil
	}
	select {
	case p.in <- it:
	case <-p.closing:
		return wire.PublishResult{}, ErrClosed
	case <-ctx.Done():
		return wire.PublishResult{}, context.Cause(ctx)
	}
	select {
	case r := <-it.done:
		return r.res, r.err
	case <-ctx.Done():
		return wire.PublishResult{}, context.Cause(ctx)
	}
}

// newKey returns a random idempotency key: 128 bits, base64url.
func newKey() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// batchLoop gathers Publish calls into batches and sends them, one at a
// time.
func (p *Publisher) batchLoop() {
	defer p.wg.Done()
	var batch []*pubItem
	size := 0
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() {
		timer.Stop()
		if len(batch) > 0 {
			p.flush(batch)
		}
		batch, size = nil, 0
	}
	add := func(it *pubItem) {
		if len(batch) > 0 && size+len(it.data) > p.cfg.MaxBatchBytes {
			flush()
		}
		batch = append(batch, it)
		size += len(it.data)
		if len(batch) >= p.cfg.BatchSize {
			flush()
		} else if len(batch) == 1 {
			timer.Reset(p.cfg.BatchDelay)
		}
	}
	for {
		select {
		case it := <-p.in:
			add(it)
		case <-timer.C:
			flush()
		case <-p.closing:
			// Take the callers that were already handing over, then stop.
			for drained := false; !drained; {
				select {
				case it := <-p.in:
					add(it)
				default:
					drained = true
				}
			}
			flush()
			return
		}
	}
}

// flush sends a batch and answers each of its callers.
func (p *Publisher) flush(batch []*pubItem) {
	live := batch[:0]
	for _, it := range batch {
		if it.ctx.Err() == nil { // a caller gone before the send is left out
			live = append(live, it)
		}
	}
	if len(live) == 0 {
		return
	}
	// The batch is not bound to any caller's ctx: each attempt has its own
	// timeout, and attempts are bounded.
	res, err := p.send(context.Background(), live, true)
	for i, it := range live {
		if err != nil {
			it.done <- pubResult{err: err}
		} else {
			it.done <- pubResult{res: res[i]}
		}
	}
}

// send posts items (in the batch form if batch) with retries and returns
// one result per item.
func (p *Publisher) send(ctx context.Context, items []*pubItem, batch bool) ([]wire.PublishResult, error) {
	body := appendPublishBody(nil, items, batch)
	for attempt := 1; ; attempt++ {
		res, retryAfter, err := p.attempt(ctx, body, batch, len(items))
		if err == nil {
			return res, nil
		}
		if retryAfter < 0 || attempt >= p.cfg.MaxAttempts || ctx.Err() != nil {
			if attempt > 1 {
				return nil, fmt.Errorf("topicast: publish failed after %d attempts: %w", attempt, err)
			}
			return nil, err
		}
		wait := max(backoff(attempt-1, p.cfg.MinBackoff, p.cfg.MaxBackoff), retryAfter)
		p.cfg.Logger.LogAttrs(ctx, slog.LevelDebug, "topicast: publish failed, retrying",
			slog.Int("attempt", attempt), slog.Duration("wait", wait), slog.Any("err", err))
		if !sleep(ctx, wait) {
			return nil, fmt.Errorf("topicast: publish gave up after %d attempts: %w", attempt, errors.Join(context.Cause(ctx), err))
		}
	}
}

// attempt makes one request. retryAfter is negative when the error is not
// worth a retry, else the least wait the server asked for.
func (p *Publisher) attempt(ctx context.Context, body []byte, batch bool, n int) (_ []wire.PublishResult, retryAfter time.Duration, _ error) {
	actx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, p.endpoint, bytes.NewReader(body))
	if err != nil {
		return nil, -1, fmt.Errorf("topicast: publish request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if p.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+p.cfg.APIKey)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("topicast: publish: %w", err) // network error: retry
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e := readErrorBody(resp)
		switch {
		case resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests,
			resp.StatusCode == http.StatusRequestTimeout:
			return nil, parseRetryAfter(resp.Header.Get("Retry-After")), e
		default:
			return nil, -1, e
		}
	}
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, 0, fmt.Errorf("topicast: publish: read the answer: %w", err) // retry: the key makes it safe
	}
	var res []wire.PublishResult
	if batch {
		var b struct {
			Results []wire.PublishResult `json:"results"`
		}
		err = json.Unmarshal(out, &b)
		res = b.Results
	} else {
		var r wire.PublishResult
		err = json.Unmarshal(out, &r)
		res = []wire.PublishResult{r}
	}
	if err != nil || len(res) != n {
		return nil, -1, fmt.Errorf("topicast: publish: unexpected answer %.200q", out)
	}
	return res, 0, nil
}

// readErrorBody turns an error answer into a *wire.Error: the code and
// message of its {"error":{...}} body, or the code of its HTTP status.
func readErrorBody(resp *http.Response) *wire.Error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody)) // a cut body still has a status
	var eb wire.ErrorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
		return &wire.Error{Code: wire.ParseErrorCode(eb.Error.Code), Message: eb.Error.Message}
	}
	return &wire.Error{Code: codeOfStatus(resp.StatusCode), Message: "HTTP " + resp.Status}
}

// codeOfStatus maps an HTTP status without an error body to an error code.
func codeOfStatus(status int) wire.ErrorCode {
	switch status {
	case http.StatusBadRequest, http.StatusNotFound, http.StatusMethodNotAllowed:
		return wire.CodeBadRequest
	case http.StatusUnauthorized:
		return wire.CodeUnauthorized
	case http.StatusForbidden:
		return wire.CodeForbidden
	case http.StatusRequestEntityTooLarge:
		return wire.CodeTooLarge
	case http.StatusTooManyRequests:
		return wire.CodeRateLimited
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return wire.CodeUnavailable
	default:
		return wire.CodeInternal
	}
}

// parseRetryAfter reads a Retry-After header in seconds (HTTP dates are
// ignored), bounded by maxRetryAfter.
func parseRetryAfter(v string) time.Duration {
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0
	}
	return min(time.Duration(n)*time.Second, maxRetryAfter)
}

// appendPublishBody appends the body of POST /v1/publish.
func appendPublishBody(dst []byte, items []*pubItem, batch bool) []byte {
	item := func(dst []byte, it *pubItem) []byte {
		dst = append(dst, `{"topic":`...)
		dst = wire.AppendString(dst, it.topic)
		dst = append(dst, `,"data":`...)
		dst = append(dst, it.data...)
		dst = append(dst, `,"key":`...)
		dst = wire.AppendString(dst, it.key)
		return append(dst, '}')
	}
	if !batch {
		return item(dst, items[0])
	}
	dst = append(dst, `{"messages":[`...)
	for i, it := range items {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = item(dst, it)
	}
	return append(dst, "]}"...)
}
