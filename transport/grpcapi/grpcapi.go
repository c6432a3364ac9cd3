package grpcapi

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"

	topicastv1 "github.com/topicast/topicast/gen/topicast/v1"
	"github.com/topicast/topicast/gen/topicast/v1/topicastv1connect"
	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

// Publisher is the node's publish path (httpapi.API is one). It must be
// goroutine-safe.
type Publisher interface {
	// AdmitPublish checks the API key of authorization (the value of an
	// Authorization header) and waits for the node's delivery backlog; it
	// returns the key's rate budget.
	AdmitPublish(ctx context.Context, authorization string) (budget string, err error)
	// Publish takes items, validated, from budget's rate and publishes them.
	// A rate-limited publish's error has a RetryAfter() time.Duration.
	Publish(ctx context.Context, budget string, items []wire.PublishItem) ([]wire.PublishResult, error)
	// CheckAPIKey checks the API key of authorization only.
	CheckAPIKey(authorization string) (budget string, err error)
	// APIKeysRequired reports whether there are API keys to check.
	APIKeysRequired() bool
}

// HistoryReader reads a topic's history (cluster.Node is one).
type HistoryReader interface {
	History(ctx context.Context, topic string, since uint64, limit int) (*wire.History, error)
}

// Defaults of Config and limits of History, those of GET /v1/history.
const (
	DefaultHistoryLimit = 100
	MaxHistoryLimit     = 1000
	// DefaultMaxRequest bounds one request message: POST /v1/publish's
	// body limit.
	DefaultMaxRequest   = 16 << 20
	DefaultWriteTimeout = 10 * time.Second
)

// Config configures the service.
type Config struct {
	// Publisher publishes. Required.
	Publisher Publisher
	// History reads history. Required.
	History HistoryReader
	// Accept receives the session of each Subscribe. Required.
	Accept transport.AcceptFunc
	// AuthorizeToken, if set, checks a client token for topics, whose
	// *wire.Error is the answer (auth.Verifier.AuthorizeToken). Nil means
	// no client token is required.
	AuthorizeToken func(token string, topics []string) error
	// MaxMessage is the data limit in bytes. Zero means
	// wire.DefaultMaxMessage.
	MaxMessage int
	// MaxRequest bounds one request message in bytes; over it the call
	// fails with ResourceExhausted before it is read. Zero means
	// max(DefaultMaxRequest, 2*MaxMessage).
	MaxRequest int
	// MaxPendingBytes bounds each Subscribe's outbound queue in bytes. Zero
	// means transport.DefaultMaxPendingBytes.
	MaxPendingBytes int
	// WriteTimeout bounds the sending of one batch of Subscribe events;
	// hitting it ends the stream as a slow consumer. Zero means
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// NodeState is the node's transport state: Subscribe sessions count in
	// its backlog and metrics. Nil means one of the service's own.
	NodeState *transport.NodeState
	// Logger; nil discards.
	Logger *slog.Logger
}

// Service implements topicastv1connect.PublisherHandler.
type Service struct {
	cfg Config
}

var _ topicastv1connect.PublisherHandler = (*Service)(nil)

// New returns the service with cfg's defaults applied.
func New(cfg Config) *Service {
	if cfg.MaxMessage == 0 {
		cfg.MaxMessage = wire.DefaultMaxMessage
	}
	if cfg.MaxRequest == 0 {
		cfg.MaxRequest = max(DefaultMaxRequest, 2*cfg.MaxMessage)
	}
	if cfg.MaxPendingBytes == 0 {
		cfg.MaxPendingBytes = transport.DefaultMaxPendingBytes
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if cfg.NodeState == nil {
		cfg.NodeState = new(transport.NodeState)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg}
}

// writerKey carries the request's http.ResponseWriter to Subscribe, whose
// write deadline connect's ServerStream cannot set.
type writerKey struct{}

// Handler returns the path to mount the service under,
// "/topicast.v1.Publisher/", and its handler.
func (s *Service) Handler() (string, http.Handler) {
	path, h := topicastv1connect.NewPublisherHandler(s, connect.WithReadMaxBytes(s.cfg.MaxRequest))
	return path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), writerKey{}, w)))
	})
}

// Publish publishes one message.
func (s *Service) Publish(ctx context.Context, req *connect.Request[topicastv1.PublishRequest]) (*connect.Response[topicastv1.PublishResponse], error) {
	budget, err := s.cfg.Publisher.AdmitPublish(ctx, req.Header().Get("Authorization"))
	if err != nil {
		return nil, s.status(ctx, err)
	}
	m := req.Msg
	items := []wire.PublishItem{{Topic: m.GetTopic(), Data: m.GetData(), Key: m.GetKey()}}
	if err := wire.CheckPublishItems(items, false, s.cfg.MaxMessage, false); err != nil {
		return nil, s.status(ctx, err)
	}
	results, err := s.cfg.Publisher.Publish(ctx, budget, items)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	return connect.NewResponse(publishResponse(results[0])), nil
}

// PublishBatch publishes a batch, validated whole.
func (s *Service) PublishBatch(ctx context.Context, req *connect.Request[topicastv1.PublishBatchRequest]) (*connect.Response[topicastv1.PublishBatchResponse], error) {
	budget, err := s.cfg.Publisher.AdmitPublish(ctx, req.Header().Get("Authorization"))
	if err != nil {
		return nil, s.status(ctx, err)
	}
	msgs := req.Msg.GetMessages()
	items := make([]wire.PublishItem, len(msgs))
	for i, m := range msgs {
		items[i] = wire.PublishItem{Topic: m.GetTopic(), Data: m.GetData(), Key: m.GetKey()}
	}
	if err := wire.CheckPublishItems(items, true, s.cfg.MaxMessage, false); err != nil {
		return nil, s.status(ctx, err)
	}
	results, err := s.cfg.Publisher.Publish(ctx, budget, items)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	out := &topicastv1.PublishBatchResponse{Results: make([]*topicastv1.PublishResponse, len(results))}
	for i, r := range results {
		out.Results[i] = publishResponse(r)
	}
	return connect.NewResponse(out), nil
}

func publishResponse(r wire.PublishResult) *topicastv1.PublishResponse {
	return &topicastv1.PublishResponse{Topic: r.Topic, Epoch: r.Epoch, Seq: r.Seq}
}

// History reads a topic's messages after since.
func (s *Service) History(ctx context.Context, req *connect.Request[topicastv1.HistoryRequest]) (*connect.Response[topicastv1.HistoryResponse], error) {
	topic := req.Msg.GetTopic()
	if err := wire.ValidateTopic(topic); err != nil {
		return nil, s.status(ctx, err)
	}
	if _, err := s.authorizeRead(req.Header().Get("Authorization"), topic); err != nil {
		return nil, s.status(ctx, err)
	}
	limit := DefaultHistoryLimit
	if n := req.Msg.GetLimit(); n > 0 {
		limit = int(min(n, MaxHistoryLimit))
	}
	h, err := s.cfg.History.History(ctx, topic, req.Msg.GetSince(), limit)
	if err != nil {
		return nil, s.status(ctx, err)
	}
	out := &topicastv1.HistoryResponse{
		Topic: h.Topic, Epoch: h.Epoch, Head: h.Head, Truncated: h.Truncated,
		Messages: make([]*topicastv1.Message, 0, len(h.Frames)),
	}
	for _, f := range h.Frames {
		if m, ok := messageOf(f); ok {
			out.Messages = append(out.Messages, m)
		}
	}
	return connect.NewResponse(out), nil
}

// messageOf reads a msg frame with full data (not a delta) into a Message.
// Data aliases the frame, which nobody modifies.
func messageOf(frame []byte) (*topicastv1.Message, bool) {
	h, ok := wire.ParseHead(frame)
	if !ok || h.Kind != wire.FrameMsg || h.Delta {
		return nil, false
	}
	return &topicastv1.Message{Topic: string(h.Topic), Epoch: string(h.Epoch), Seq: h.Seq, Ts: h.TS, Data: h.Data}, true
}

// authorizeRead checks the caller of History or Subscribe for topic:
// an API key lets a service read every topic (service is then true);
// otherwise a client token must allow the topic when tokens are required,
// and, without them, the key is required when there are keys.
func (s *Service) authorizeRead(authorization, topic string) (service bool, err error) {
	_, keyErr := s.cfg.Publisher.CheckAPIKey(authorization)
	if keyErr == nil && s.cfg.Publisher.APIKeysRequired() {
		return true, nil
	}
	if s.cfg.AuthorizeToken != nil {
		token, _ := strings.CutPrefix(authorization, "Bearer ")
		return false, s.cfg.AuthorizeToken(token, []string{topic})
	}
	return false, keyErr
}

// Code returns the gRPC status code of a protocol error code: the HTTP
// API's 400, 401, 403, 413, 429, 503 and 500 answers.
func Code(c wire.ErrorCode) connect.Code {
	switch c {
	case wire.CodeBadRequest:
		return connect.CodeInvalidArgument
	case wire.CodeUnauthorized:
		return connect.CodeUnauthenticated
	case wire.CodeForbidden:
		return connect.CodePermissionDenied
	case wire.CodeTooLarge:
		// Not ResourceExhausted: that is the code of a rate limit, which
		// waiting cures; an oversized message must change.
		return connect.CodeInvalidArgument
	case wire.CodeRateLimited:
		return connect.CodeResourceExhausted
	case wire.CodeUnavailable:
		return connect.CodeUnavailable
	default:
		return connect.CodeInternal
	}
}

// ErrorCodeKey is the metadata key (a response trailer in gRPC) that
// names the protocol error code of a failed call, "too_large" say, which
// the gRPC code alone does not tell apart from bad_request.
const ErrorCodeKey = "topicast-error-code"

// status turns err into the call's *connect.Error. A call whose own
// deadline passed (or that was cancelled) while the node was busy with it
// gets DeadlineExceeded (Canceled): the node's unavailable answer then
// only says that the call ran out of time.
func (s *Service) status(ctx context.Context, err error) error {
	e := wire.AsError(err)
	code := Code(e.Code)
	if e.Code == wire.CodeUnavailable {
		switch {
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			code = connect.CodeDeadlineExceeded
		case errors.Is(ctx.Err(), context.Canceled):
			code = connect.CodeCanceled
		}
	}
	if e.Code == wire.CodeInternal {
		s.cfg.Logger.LogAttrs(ctx, slog.LevelWarn, "grpc call failed", slog.Any("err", err))
	}
	ce := connect.NewError(code, e)
	ce.Meta().Set(ErrorCodeKey, e.Code.String())
	var ra interface{ RetryAfter() time.Duration }
	if errors.As(err, &ra) {
		ce.Meta().Set("retry-after", strconv.FormatInt(int64(math.Ceil(ra.RetryAfter().Seconds())), 10))
	}
	return ce
}
