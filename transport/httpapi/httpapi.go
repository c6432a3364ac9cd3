package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

// Backend is what the handlers need of a node.
type Backend interface {
	Publish(ctx context.Context, items []wire.PublishItem) ([]wire.PublishResult, error)
	History(ctx context.Context, topic string, since uint64, limit int) (*wire.History, error)
	Ready() bool
}

// Defaults of Config.
const (
	DefaultMaxBody      = 16 << 20
	DefaultHistoryLimit = 100
	MaxHistoryLimit     = 1000
	// DefaultPublishRate is the messages per second one API key may
	// publish; DefaultPublishBurst how many at once. The server builds
	// Config.PublishLimiter with them unless configured otherwise.
	DefaultPublishRate  = 10000
	DefaultPublishBurst = 10000
)

// Config configures the handlers.
type Config struct {
	Backend Backend
	// Info returns the body of GET /v1/info; it is encoded as JSON.
	Info func() any
	// APIKeys, if any, guard POST /v1/publish: a request needs
	// "Authorization: Bearer <one of them>".
	APIKeys []string
	// PublishLimiter bounds publishing per API key (one budget, named "",
	// for all publishers when there are no keys): when it asks a publish
	// to wait, POST /v1/publish answers 429 with Retry-After. Nil means no
	// limit.
	PublishLimiter PublishLimiter
	// AuthorizeClient, if set, checks the client token of GET /v1/history
	// (?token= or Authorization: Bearer) for its topic; its *wire.Error
	// is the answer (401 unauthorized, 403 forbidden).
	AuthorizeClient func(r *http.Request, topics []string) error
	// Origins decides CORS answers; nil allows only requests without
	// Origin and the server's own and localhost origins.
	Origins *transport.OriginPolicy
	// MaxMessage is the data limit in bytes. Zero means
	// wire.DefaultMaxMessage.
	MaxMessage int
	// MaxBody bounds a publish body in bytes. Zero means DefaultMaxBody.
	MaxBody int64
	// MaxBacklog is the delivery backlog (bytes queued for the node's
	// clients and not yet written, NodeState.PendingBytes) above which a
	// publish waits, up to BacklogWait, before it is handed to the topic: an
	// overloaded node slows its publishers instead of queueing without end.
	// Zero means DefaultMaxBacklog; negative disables the wait.
	MaxBacklog int64
	// NodeState is the transport state of the node that Backend publishes
	// to, whose backlog MaxBacklog bounds. Nil means a backlog that is
	// always empty: publishes never wait.
	NodeState *transport.NodeState
	// BacklogWait bounds that wait; past it the publish answers 503
	// unavailable. Zero means DefaultBacklogWait.
	BacklogWait time.Duration
	Logger      *slog.Logger
}

// PublishLimiter meters publishes per budget (an API key). It must be
// goroutine-safe. transport/auth.Limiter is one.
type PublishLimiter interface {
	// Reserve takes n messages from budget's allowance and returns 0, or
	// how long the publisher must wait before trying again.
	Reserve(budget string, n int) time.Duration
	// Rate is the allowance in messages per second, which the 429 answer
	// states.
	Rate() float64
}

// API serves the HTTP endpoints.
type API struct {
	cfg Config
}

// New returns the API with cfg's defaults applied.
func New(cfg Config) *API {
	if cfg.MaxMessage == 0 {
		cfg.MaxMessage = wire.DefaultMaxMessage
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = max(DefaultMaxBody, int64(cfg.MaxMessage)*2)
	}
	if cfg.MaxBacklog == 0 {
		cfg.MaxBacklog = DefaultMaxBacklog
	}
	if cfg.BacklogWait == 0 {
		cfg.BacklogWait = DefaultBacklogWait
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Origins == nil {
		cfg.Origins = transport.NewOriginPolicy(nil)
	}
	if cfg.NodeState == nil {
		cfg.NodeState = new(transport.NodeState)
	}
	return &API{cfg: cfg}
}

// Register adds the endpoints to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.Handle("POST /v1/publish", a.CORS(http.HandlerFunc(a.publish)))
	mux.Handle("GET /v1/history", a.CORS(http.HandlerFunc(a.history)))
	mux.Handle("GET /v1/presence", a.CORS(http.HandlerFunc(a.presence)))
	mux.Handle("GET /v1/info", a.CORS(http.HandlerFunc(a.info)))
	mux.Handle("OPTIONS /v1/", a.CORS(http.NotFoundHandler()))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !a.cfg.Backend.Ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, "not ready\n")
			return
		}
		_, _ = io.WriteString(w, "ready\n")
	})
}

// CORS answers preflights and adds CORS headers for allowed origins; other
// origins get no CORS headers, so browsers refuse them.
func (a *API) CORS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if origin != "" && a.cfg.Origins.Allow(r) {
			h := w.Header()
			h.Set("Access-Control-Allow-Origin", origin)
			h.Add("Vary", "Origin")
			if r.Method == http.MethodOptions {
				h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Last-Event-ID")
				h.Set("Access-Control-Max-Age", "600")
			}
		}
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Defaults of the publish backpressure.
const (
	DefaultMaxBacklog  = 32 << 20
	DefaultBacklogWait = 5 * time.Second
	backlogPoll        = time.Millisecond
)

// waitForBacklog holds a publish while the node's delivery backlog is over
// MaxBacklog: publishers then go at the speed the node delivers, as with a
// server that writes synchronously, while topics and connections never wait.
func (a *API) waitForBacklog(ctx context.Context) error {
	node := a.cfg.NodeState
	if a.cfg.MaxBacklog < 0 || node.PendingBytes() <= a.cfg.MaxBacklog {
		return nil
	}
	deadline := time.Now().Add(a.cfg.BacklogWait)
	t := time.NewTicker(backlogPoll)
	defer t.Stop()
	for node.PendingBytes() > a.cfg.MaxBacklog {
		if time.Now().After(deadline) {
			return wire.Errorf(wire.CodeUnavailable, "the node is behind on deliveries, try again")
		}
		select {
		case <-ctx.Done():
			return wire.Errorf(wire.CodeUnavailable, "publish cancelled while the node was behind")
		case <-t.C:
		}
	}
	return nil
}

// WriteError answers err as {"error":{"code","message"}} with its status.
func WriteError(w http.ResponseWriter, err error) { transport.WriteHTTPError(w, err) }

// readBody reads a request body of at most max bytes. A body of known
// length is read into a buffer of that size: io.ReadAll would start at 512
// bytes and grow by copying, and what a publish allocates sets how often
// the collector runs under load.
func readBody(w http.ResponseWriter, r *http.Request, max int64) ([]byte, error) {
	tooBig := func() error { return wire.Errorf(wire.CodeTooLarge, "body is over %d bytes", max) }
	if r.ContentLength > max {
		return nil, tooBig()
	}
	if r.ContentLength >= 0 {
		body := make([]byte, r.ContentLength)
		if _, err := io.ReadFull(r.Body, body); err != nil {
			return nil, wire.Errorf(wire.CodeBadRequest, "reading the body failed")
		}
		return body, nil
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, max))
	if err != nil {
		var maxErr *http.MaxBytesError
		if errors.As(err, &maxErr) {
			return nil, tooBig()
		}
		return nil, wire.Errorf(wire.CodeBadRequest, "reading the body failed")
	}
	return body, nil
}

func writeJSON(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body) // the client may be gone; nothing to do about it
}

// APIKeysRequired reports whether publishing needs an API key.
func (a *API) APIKeysRequired() bool { return len(a.cfg.APIKeys) > 0 }

// CheckAPIKey checks the value of an Authorization header (or of gRPC's
// authorization metadata), "Bearer <api key>", and returns the name of the
// key's rate budget. Without APIKeys every value passes. Its *wire.Error is
// unauthorized for a missing key, forbidden for a wrong one.
func (a *API) CheckAPIKey(authorization string) (budget string, err error) {
	if len(a.cfg.APIKeys) == 0 {
		return "", nil
	}
	key, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok || key == "" {
		return "", wire.Errorf(wire.CodeUnauthorized, "publishing needs Authorization: Bearer <api key>")
	}
	found, which := 0, 0
	for i, k := range a.cfg.APIKeys {
		eq := subtle.ConstantTimeCompare([]byte(k), []byte(key))
		which = subtle.ConstantTimeSelect(eq, i, which)
		found |= eq
	}
	if found == 0 {
		return "", wire.Errorf(wire.CodeForbidden, "the api key is not valid")
	}
	return strconv.Itoa(which), nil
}

// RateLimitedError is the error of a publish over its API key's rate: a
// rate_limited *wire.Error (which errors.As finds) and how long to wait.
type RateLimitedError struct {
	Err  *wire.Error
	Wait time.Duration
}

func (e *RateLimitedError) Error() string { return e.Err.Error() }

// RetryAfter returns how long the publisher must wait.
func (e *RateLimitedError) RetryAfter() time.Duration { return e.Wait }

// Unwrap returns the *wire.Error.
func (e *RateLimitedError) Unwrap() error { return e.Err }

// AdmitPublish and Publish are the node's one publish path, shared by
// POST /v1/publish and the gRPC API so that both check the same things in
// the same order. AdmitPublish checks the API key of authorization
// (CheckAPIKey) and then the delivery backlog, which may make it wait, at
// most until ctx is done; it returns the key's rate budget. The caller
// then decodes its request form, validating each message with
// wire.CheckPublishItem, and hands the messages to Publish.
func (a *API) AdmitPublish(ctx context.Context, authorization string) (budget string, err error) {
	if budget, err = a.CheckAPIKey(authorization); err != nil {
		return "", err
	}
	return budget, a.waitForBacklog(ctx)
}

// Publish takes items from budget's rate (over it: a *RateLimitedError)
// and publishes them with Backend.Publish. The messages of one topic go
// to its actor in one request, all or none. A ctx that ends (or the node's
// request timeout) while a batch's topics are answering gives an
// unavailable *wire.Error, and each topic's messages may or may not have
// been published: a retry with the same idempotency keys publishes what is
// missing and repeats nothing.
func (a *API) Publish(ctx context.Context, budget string, items []wire.PublishItem) ([]wire.PublishResult, error) {
	if err := a.reserve(budget, len(items)); err != nil {
		return nil, err
	}
	return a.cfg.Backend.Publish(ctx, items)
}

func (a *API) publish(w http.ResponseWriter, r *http.Request) {
	budget, err := a.AdmitPublish(r.Context(), r.Header.Get("Authorization"))
	if err != nil {
		WriteError(w, err)
		return
	}
	body, err := readBody(w, r, a.cfg.MaxBody)
	if err != nil {
		WriteError(w, err)
		return
	}
	items, batch, err := wire.DecodePublishBody(body, a.cfg.MaxMessage, false)
	if err != nil {
		WriteError(w, err)
		return
	}
	results, err := a.Publish(r.Context(), budget, items)
	if err != nil {
		var rl *RateLimitedError
		if errors.As(err, &rl) {
			w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(rl.Wait.Seconds())), 10))
		}
		WriteError(w, err)
		return
	}
	if !batch {
		writeJSON(w, wire.AppendPublishResult(make([]byte, 0, 128), results[0]))
		return
	}
	out, err := json.Marshal(struct {
		Results []wire.PublishResult `json:"results"`
	}{results})
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, out)
}

// reserve takes n messages from budget's allowance; over it, it returns a
// *RateLimitedError.
func (a *API) reserve(budget string, n int) error {
	if a.cfg.PublishLimiter == nil {
		return nil
	}
	wait := a.cfg.PublishLimiter.Reserve(budget, n)
	if wait <= 0 {
		return nil
	}
	return &RateLimitedError{
		Err: wire.Errorf(wire.CodeRateLimited, "over %g messages per second for this api key, retry later",
			a.cfg.PublishLimiter.Rate()),
		Wait: wait,
	}
}

func (a *API) history(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	topic := q.Get("topic")
	if err := wire.ValidateTopic(topic); err != nil {
		WriteError(w, err)
		return
	}
	if a.cfg.AuthorizeClient != nil {
		if err := a.cfg.AuthorizeClient(r, []string{topic}); err != nil {
			WriteError(w, err)
			return
		}
	}
	var since uint64
	if s := q.Get("since"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			WriteError(w, wire.Errorf(wire.CodeBadRequest, "since must be an unsigned integer"))
			return
		}
		since = n
	}
	limit := DefaultHistoryLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			WriteError(w, wire.Errorf(wire.CodeBadRequest, "limit must be a positive integer"))
			return
		}
		limit = min(n, MaxHistoryLimit)
	}
	h, err := a.cfg.Backend.History(r.Context(), topic, since, limit)
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, h.AppendJSON(nil))
}

// PresenceBackend is a Backend that answers who is in a topic (PROTOCOL.md
// 1.1 presence); GET /v1/presence needs one.
type PresenceBackend interface {
	Presence(ctx context.Context, topic string, limit int) (*wire.Presence, error)
}

// presence answers GET /v1/presence?topic=T: the body of a presence
// command's answer. A service's API key or a client token that may
// subscribe to the topic opens it, as for history.
func (a *API) presence(w http.ResponseWriter, r *http.Request) {
	topic := r.URL.Query().Get("topic")
	if err := wire.ValidateTopic(topic); err != nil {
		WriteError(w, err)
		return
	}
	if a.cfg.AuthorizeClient != nil {
		service := a.APIKeysRequired()
		if service {
			_, err := a.CheckAPIKey(r.Header.Get("Authorization"))
			service = err == nil
		}
		if !service {
			if err := a.cfg.AuthorizeClient(r, []string{topic}); err != nil {
				WriteError(w, err)
				return
			}
		}
	}
	pb, ok := a.cfg.Backend.(PresenceBackend)
	if !ok {
		WriteError(w, wire.Errorf(wire.CodeUnavailable, "presence is not available on this node"))
		return
	}
	p, err := pb.Presence(r.Context(), topic, wire.MaxPresenceListed)
	if err != nil {
		WriteError(w, err)
		return
	}
	members := make([][]byte, len(p.Members))
	for i, m := range p.Members {
		members[i] = wire.AppendMember(nil, m.Client, m.Conn, m.Info)
	}
	writeJSON(w, wire.AppendPresenceBody(nil, topic, p.Count, members))
}

func (a *API) info(w http.ResponseWriter, r *http.Request) {
	out, err := json.Marshal(a.cfg.Info())
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, out)
}
