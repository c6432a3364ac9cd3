package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/topicast/topicast/transport"
	"github.com/topicast/topicast/transport/wire"
)

// Backend is what the handlers need of a node.
type Backend interface {
	Publish(ctx context.Context, items []wire.PublishItem) ([]wire.PublishResult, error)
	History(ctx context.Context, topic string, since uint64, limit int) (*wire.History, error)
	Ready() bool
}

// Defaults of Config.
const (
	DefaultMaxMessage   = 65536
	DefaultMaxBody      = 16 << 20
	DefaultHistoryLimit = 100
	MaxHistoryLimit     = 1000
)

// Config configures the handlers.
type Config struct {
	Backend Backend
	// Info returns the body of GET /v1/info; it is encoded as JSON.
	Info func() any
	// APIKeys, if any, guard POST /v1/publish: a request needs
	// "Authorization: Bearer <one of them>".
	APIKeys []string
	// Origins decides CORS answers; nil allows only requests without
	// Origin and the server's own and localhost origins.
	Origins *transport.OriginPolicy
	// MaxMessage is the data limit in bytes. Zero means DefaultMaxMessage.
	MaxMessage int
	// MaxBody bounds a publish body in bytes. Zero means DefaultMaxBody.
	MaxBody int64
	Logger  *slog.Logger
}

// API serves the HTTP endpoints.
type API struct {
	cfg Config
}

// New returns the API with cfg's defaults applied.
func New(cfg Config) *API {
	if cfg.MaxMessage == 0 {
		cfg.MaxMessage = DefaultMaxMessage
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = max(DefaultMaxBody, int64(cfg.MaxMessage)*2)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Origins == nil {
		cfg.Origins = transport.NewOriginPolicy(nil)
	}
	return &API{cfg: cfg}
}

// Register adds the endpoints to mux.
func (a *API) Register(mux *http.ServeMux) {
	mux.Handle("POST /v1/publish", a.CORS(http.HandlerFunc(a.publish)))
	mux.Handle("GET /v1/history", a.CORS(http.HandlerFunc(a.history)))
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

// WriteError answers err as {"error":{"code","message"}} with its status.
func WriteError(w http.ResponseWriter, err error) {
	e := wire.AsError(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Code.HTTPStatus())
	_, _ = w.Write(wire.AppendErrorBody(nil, e))
}

func writeJSON(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body) // the client may be gone; nothing to do about it
}

func (a *API) authorizePublish(r *http.Request) error {
	if len(a.cfg.APIKeys) == 0 {
		return nil
	}
	auth := r.Header.Get("Authorization")
	key, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok || key == "" {
		return wire.Errorf(wire.CodeUnauthorized, "publishing needs Authorization: Bearer <api key>")
	}
	found := 0
	for _, k := range a.cfg.APIKeys {
		found |= subtle.ConstantTimeCompare([]byte(k), []byte(key))
	}
	if found == 0 {
		return wire.Errorf(wire.CodeForbidden, "the api key is not valid")
	}
	return nil
}

func (a *API) publish(w http.ResponseWriter, r *http.Request) {
	if err := a.authorizePublish(r); err != nil {
		WriteError(w, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			WriteError(w, wire.Errorf(wire.CodeTooLarge, "body is over %d bytes", a.cfg.MaxBody))
			return
		}
		WriteError(w, wire.Errorf(wire.CodeBadRequest, "reading the body failed"))
		return
	}
	items, batch, err := wire.DecodePublishBody(body, a.cfg.MaxMessage, false)
	if err != nil {
		WriteError(w, err)
		return
	}
	results, err := a.cfg.Backend.Publish(r.Context(), items)
	if err != nil {
		WriteError(w, err)
		return
	}
	var out []byte
	if batch {
		out, err = json.Marshal(struct {
			Results []wire.PublishResult `json:"results"`
		}{results})
	} else {
		out, err = json.Marshal(results[0])
	}
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, out)
}

func (a *API) history(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	topic := q.Get("topic")
	if err := wire.ValidateTopic(topic); err != nil {
		WriteError(w, err)
		return
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

func (a *API) info(w http.ResponseWriter, r *http.Request) {
	out, err := json.Marshal(a.cfg.Info())
	if err != nil {
		WriteError(w, err)
		return
	}
	writeJSON(w, out)
}
