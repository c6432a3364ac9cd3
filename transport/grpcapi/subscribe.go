package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	topicastv1 "github.com/topicast/topicast/gen/topicast/v1"
	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

// subID is the id of a Subscribe session's one sub command.
const subID = 1

var sessionSeq atomic.Uint64

// Subscribe streams one topic's events until the client cancels the call
// or the session closes.
func (s *Service) Subscribe(ctx context.Context, req *connect.Request[topicastv1.SubscribeRequest], stream *connect.ServerStream[topicastv1.SubscribeResponse]) error {
	topic := req.Msg.GetTopic()
	if err := wire.ValidateTopic(topic); err != nil {
		return s.status(ctx, err)
	}
	authorization := req.Header().Get("Authorization")
	service, err := s.authorizeRead(authorization, topic)
	if err != nil {
		return s.status(ctx, err)
	}
	var since *wire.Position
	if p := req.Msg.GetSince(); p != nil {
		// As the WebSocket sub: a since without its epoch is refused.
		if err := wire.ValidateEpoch(p.GetEpoch()); err != nil {
			return s.status(ctx, wire.Errorf(wire.CodeBadRequest, "since: %s", wire.AsError(err).Message))
		}
		since = &wire.Position{Epoch: p.GetEpoch(), Seq: p.GetSeq()}
	}
	if _, err := wire.SubCommand(subID, topic, since); err != nil {
		return s.status(ctx, err)
	}
	sess := &session{
		stream:  stream,
		timeout: s.cfg.WriteTimeout,
		info: transport.SessionInfo{
			ID:         "grpc-" + strconv.FormatUint(sessionSeq.Add(1), 10),
			Transport:  "grpc",
			RemoteAddr: req.Peer().Addr,
			Service:    service,
		},
	}
	if !service {
		// The connection actor checks it again, and ends the stream when it
		// expires.
		sess.info.Token, _ = strings.CutPrefix(authorization, "Bearer ")
	}
	if w, ok := ctx.Value(writerKey{}).(http.ResponseWriter); ok {
		sess.rc = http.NewResponseController(w)
	}
	// Not given to a transport.Keepalive: the client sends nothing after
	// its request, and HTTP/2 has its own pings.
	sess.Init(sess, transport.OutboundConfig{MaxPendingBytes: s.cfg.MaxPendingBytes, NodeState: s.cfg.NodeState})
	h := s.cfg.Accept(sess)
	transport.Subscribe(h, subID, topic, since, false)
	select {
	case <-ctx.Done():
		sess.Fail(context.Cause(ctx))
	case <-sess.Context().Done():
	}
	<-sess.Context().Done()
	sess.Wait() // the writer must be gone before the stream is
	cause := context.Cause(sess.Context())
	h.HandleClosed(cause)
	if sess.subErr != nil {
		return s.status(ctx, sess.subErr)
	}
	return closeStatus(ctx, cause)
}

// closeStatus is the status that ends a stream whose session closed with
// cause: the close codes of the WebSocket protocol as gRPC codes.
func closeStatus(ctx context.Context, cause error) error {
	if ctx.Err() != nil {
		return connect.NewError(connect.CodeCanceled, fmt.Errorf("subscription ended: %w", ctx.Err()))
	}
	d, ok := transport.AsDisconnect(cause)
	if !ok {
		return connect.NewError(connect.CodeUnavailable, fmt.Errorf("subscription ended: %w", cause))
	}
	code := connect.CodeUnavailable // 1001 shutting down and the rest: reconnect with since
	switch d.Code {
	case wire.CloseSlowConsumer, wire.CloseRateLimited:
		code = connect.CodeResourceExhausted
	case wire.CloseUnauthorized:
		code = connect.CodeUnauthenticated
	}
	ce := connect.NewError(code, d)
	ce.Meta().Set(closeCodeKey, strconv.Itoa(int(d.Code)))
	return ce
}

// closeCodeKey is the metadata key (a trailer in gRPC) of the close code
// that ended a Subscribe stream.
const closeCodeKey = "topicast-close-code"

// session is one Subscribe stream as the node's actors see it.
type session struct {
	transport.Outbound
	stream  *connect.ServerStream[topicastv1.SubscribeResponse]
	rc      *http.ResponseController // nil when the writer is unknown (tests)
	timeout time.Duration
	info    transport.SessionInfo

	// Owned by the Outbound's writer (one goroutine at a time); read by the
	// handler once the writer is gone.
	subErr *wire.Error // the sub's error answer, if any
	ended  bool
}

var (
	_ transport.Session = (*session)(nil)
	_ transport.Conn    = (*session)(nil)
)

func (s *session) Info() *transport.SessionInfo { return &s.info }

// WriteFrames sends the events of frames, with a deadline on the whole
// batch.
func (s *session) WriteFrames(frames [][]byte) error {
	if err := s.setDeadline(time.Now().Add(s.timeout)); err != nil {
		return err
	}
	start := time.Now()
	for _, f := range frames {
		ev := s.event(f)
		if ev == nil {
			continue
		}
		if err := s.stream.Send(ev); err != nil {
			if time.Since(start) >= s.timeout {
				// Reported as the deadline whatever HTTP/2 made of it, so the
				// session closes as a slow consumer.
				return fmt.Errorf("grpc send: %w (%w)", os.ErrDeadlineExceeded, err)
			}
			return fmt.Errorf("grpc send: %w", err)
		}
	}
	// An HTTP/2 stream's deadline resets the stream when it passes, even
	// with nothing to write: an idle subscription must not have one.
	return s.setDeadline(time.Time{})
}

func (s *session) setDeadline(t time.Time) error {
	if s.rc == nil {
		return nil
	}
	if err := s.rc.SetWriteDeadline(t); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return fmt.Errorf("grpc write deadline: %w", err)
	}
	return nil
}

// event returns the event of frame, nil for frames that have none (pings,
// answers to other commands) or that come after the end.
func (s *session) event(f []byte) *topicastv1.SubscribeResponse {
	if s.ended {
		return nil
	}
	if wire.IsMsg(f) {
		if m, ok := messageOf(f); ok {
			return &topicastv1.SubscribeResponse{Event: &topicastv1.SubscribeResponse_Message{Message: m}}
		}
		return nil
	}
	switch wire.Kind(f) {
	case wire.FrameReset:
		if h, ok := wire.ParseHead(f); ok {
			return &topicastv1.SubscribeResponse{Event: &topicastv1.SubscribeResponse_Reset_{Reset_: &topicastv1.Reset{
				Topic: string(h.Topic), Epoch: string(h.Epoch), Seq: h.Seq,
			}}}
		}
	case wire.FrameOK:
		if r, ok := wire.ParseOK(f); ok && r.ID == subID && r.Topic != nil {
			return &topicastv1.SubscribeResponse{Event: &topicastv1.SubscribeResponse_Subscribed{Subscribed: &topicastv1.Subscribed{
				Topic: string(r.Topic), Epoch: string(r.Epoch), Seq: r.Seq, Recovered: r.Recovery == wire.Recovered,
			}}}
		}
	case wire.FrameError:
		// The sub failed (unavailable, forbidden), or the server ended the
		// subscription: either ends the stream with the error's status.
		if e, ok := wire.ParseError(f); ok && (e.ID == subID || e.Topic != "") {
			s.ended, s.subErr = true, e
			s.Close(transport.Disconnect{Code: wire.CloseNormal, Reason: "subscription ended"})
		}
	}
	return nil
}

// WriteClose does nothing: the handler returns once the session is
// finished, and its status tells the client why.
func (s *session) WriteClose(transport.Disconnect) {}

// Abort does nothing: the handler's return ends the stream.
func (s *session) Abort() {}
