package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pion/datachannel"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"

	"github.com/topicast/topicast/sdk/wire"
)

// The data channels of a WebRTC session (webrtc-contract: "Channels").
const (
	rtcChannel         = "topicast"
	rtcDatagramChannel = "topicast-datagram"
)

const (
	// rtcPath ends the path of a WebRTC URL: POST there is the signalling.
	rtcPath = "/v1/webrtc"
	// rtcMaxAnswer bounds the answer SDP read from the server.
	rtcMaxAnswer = 256 << 10
	// rtcMaxErrorBody bounds the error body read from the server.
	rtcMaxErrorBody = 4 << 10
	// rtcReadBufSize is a connection's initial read buffer; it doubles
	// for a larger channel message, up to Config.MaxReadBytes.
	rtcReadBufSize = 16 << 10
	// rtcUnsetMaxMessage is the largest message a peer accepts when its
	// SDP has no max-message-size (RFC 8841: 64 KiB).
	rtcUnsetMaxMessage = 65535
	// rtcCloseFollowWait is how long an error frame whose code is both an
	// error code and a close name (unauthorized, too_large, rate_limited)
	// waits for the end of the peer connection that makes it a close,
	// before it is handed over as an ordinary error frame.
	rtcCloseFollowWait = 2 * time.Second
)

// isWebRTCURL reports whether u is a WebRTC signalling URL: http:// or
// https:// with a path that ends in /v1/webrtc.
func isWebRTCURL(u *url.URL) bool {
	return (u.Scheme == "http" || u.Scheme == "https") && strings.HasSuffix(strings.TrimSuffix(u.Path, "/"), rtcPath)
}

// rtcDialer dials WebRTC sessions with github.com/pion/webrtc/v4: a peer
// connection with the "topicast" data channel (ordered, reliable) and the
// "topicast-datagram" one (unordered, no retransmission), offered to the
// server by POST /v1/webrtc with every ICE candidate in the offer.
type rtcDialer struct {
	api          *webrtc.API
	http         *http.Client
	header       http.Header
	iceServers   []string // Config.ICEServers; empty: the server's
	dialTimeout  time.Duration
	writeTimeout time.Duration
	maxRead      int
	log          *slog.Logger

	// Guarded by mu.
	mu sync.Mutex
	// info holds the ICE servers of GET /v1/info, by info URL.
	info map[string][]string
}

func newRTCDialer(cfg *Config) *rtcDialer {
	var se webrtc.SettingEngine
	// Host candidates by their addresses: no mDNS names, which servers
	// cannot resolve, and no mDNS socket. Loopback too, for a server on
	// the same host.
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetIncludeLoopbackCandidate(true)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	// Detached channels read and write like connections; writes wait while
	// SCTP has data not sent yet, so WriteTimeout bounds them as it does a
	// socket write.
	se.DetachDataChannels()
	se.EnableDataChannelBlockWrite(true)
	se.LoggerFactory = pionLoggers{log: cfg.Logger}
	// Data channels only: no codecs and no RTP interceptors (and their
	// goroutines).
	api := webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(&webrtc.MediaEngine{}),
		webrtc.WithInterceptorRegistry(&interceptor.Registry{}))
	return &rtcDialer{
		api: api,
		http: &http.Client{Transport: &http.Transport{
			Proxy:           http.ProxyFromEnvironment,
			TLSClientConfig: cfg.TLSConfig,
			// One offer per connection: an idle connection kept for the
			// next one (seconds or hours later) would only hold a
			// goroutine and a socket.
			DisableKeepAlives: true,
		}},
		header:       cfg.Header.Clone(),
		iceServers:   cfg.ICEServers,
		dialTimeout:  cfg.DialTimeout,
		writeTimeout: cfg.WriteTimeout,
		maxRead:      cfg.MaxReadBytes,
		log:          cfg.Logger,
		info:         make(map[string][]string),
	}
}

// dial opens a peer connection to the server of rawURL, whose "topicast"
// channel is open when it returns.
func (d *rtcDialer) dial(ctx context.Context, rawURL, token string) (transportConn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.dialTimeout)
	defer cancel()
	c, err := d.open(ctx, rawURL, token)
	if err != nil {
		return nil, fmt.Errorf("webrtc dial %s: %w", rawURL, err)
	}
	return c, nil
}

func (d *rtcDialer) open(ctx context.Context, rawURL, token string) (*rtcConn, error) {
	servers, err := d.iceServersFor(ctx, rawURL)
	if err != nil {
		return nil, err
	}
	var conf webrtc.Configuration
	if len(servers) > 0 {
		conf.ICEServers = []webrtc.ICEServer{{URLs: servers}}
	}
	pc, err := d.api.NewPeerConnection(conf)
	if err != nil {
		return nil, fmt.Errorf("ICE servers %q: %w", servers, err)
	}
	c := newRTCConn(pc, d.writeTimeout, d.maxRead)
	ok := false
	defer func() {
		if !ok {
			c.abort()
		}
	}()
	opened, err := c.createChannels()
	if err != nil {
		return nil, err
	}
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return nil, err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return nil, err
	}
	// The offer carries every candidate: one round trip, as the server
	// expects.
	select {
	case <-gathered:
	case <-ctx.Done():
		return nil, fmt.Errorf("gather ICE candidates: %w", context.Cause(ctx))
	}
	answer, err := d.signal(ctx, rawURL, token, pc.LocalDescription().SDP)
	if err != nil {
		return nil, err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return nil, fmt.Errorf("the server's answer: %w", err)
	}
	select {
	case r := <-opened:
		if r.err != nil {
			return nil, fmt.Errorf("open the %s channel: %w", rtcChannel, r.err)
		}
		c.dc = r.dc
	case <-c.gone:
		return nil, fmt.Errorf("the peer connection %s before the %s channel opened: %w",
			c.goneState(), rtcChannel, net.ErrClosed)
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for the %s channel (ICE and DTLS): %w", rtcChannel, context.Cause(ctx))
	}
	c.maxWrite = rtcUnsetMaxMessage
	if sctp := pc.SCTP(); sctp != nil {
		if n := sctp.GetCapabilities().MaxMessageSize; n > 0 {
			c.maxWrite = int(min(n, 1<<30))
		}
	}
	ok = true
	return c, nil
}

// signal posts the offer and returns the answer SDP. A refusal is a
// *wire.Error; those that forbid trying again unchanged (401, 400, 413)
// also wrap the *CloseError that a WebSocket session would have ended
// with, so that the client stops as it would there.
func (d *rtcDialer) signal(ctx context.Context, rawURL, token, offer string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rawURL, strings.NewReader(offer))
	if err != nil {
		return "", err
	}
	for k, v := range d.header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/sdp")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }() // read to the end or abandoned: nothing to report
	if resp.StatusCode != http.StatusCreated {
		return "", refusal(resp)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, rtcMaxAnswer+1))
	if err != nil {
		return "", fmt.Errorf("read the answer: %w", err)
	}
	if len(body) > rtcMaxAnswer {
		return "", fmt.Errorf("the server's answer is over %d bytes", rtcMaxAnswer)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "application/sdp" {
		return "", fmt.Errorf("the server answered %s with content type %q, not application/sdp",
			resp.Status, resp.Header.Get("Content-Type"))
	}
	return string(body), nil
}

// refusal turns an error answer to the offer into an error.
func refusal(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, rtcMaxErrorBody)) // what came is enough to describe it
	var eb struct {
		Error *struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	e := &wire.Error{Code: errorCodeOfStatus(resp.StatusCode), Message: strings.TrimSpace(string(body))}
	if json.Unmarshal(body, &eb) == nil && eb.Error != nil {
		e.Code, e.Message = wire.ParseErrorCode(eb.Error.Code), eb.Error.Message
	}
	var code wire.DisconnectCode
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		code = wire.CloseUnauthorized
	case http.StatusBadRequest:
		code = wire.CloseProtocolError
	case http.StatusRequestEntityTooLarge:
		code = wire.CloseTooLarge
	default:
		return fmt.Errorf("the server answered %s: %w", resp.Status, e)
	}
	return fmt.Errorf("the server answered %s: %w (%w)", resp.Status, e, &CloseError{Code: code, Reason: e.Message})
}

// errorCodeOfStatus names the error of an HTTP status without a JSON body.
func errorCodeOfStatus(status int) wire.ErrorCode {
	for code := wire.CodeBadRequest; code <= wire.CodeInternal; code++ {
		if code.HTTPStatus() == status {
			return code
		}
	}
	return wire.CodeInternal
}

// iceServersFor returns Config.ICEServers or else the ICE servers that the
// server of rawURL lists in GET /v1/info (webrtc.iceServers), asked until
// it answers. A server whose info does not list them gets none: host
// candidates only.
func (d *rtcDialer) iceServersFor(ctx context.Context, rawURL string) ([]string, error) {
	if len(d.iceServers) > 0 {
		return d.iceServers, nil
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	u.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/"), rtcPath) + "/v1/info"
	u.RawPath, u.RawQuery, u.Fragment = "", "", ""
	infoURL := u.String()
	d.mu.Lock()
	servers, ok := d.info[infoURL]
	d.mu.Unlock()
	if ok {
		return servers, nil
	}
	servers, answered, err := d.fetchICEServers(ctx, infoURL)
	if err != nil {
		if ctx.Err() != nil {
			return nil, err
		}
		d.log.LogAttrs(ctx, slog.LevelDebug, "topicast: no ICE servers from the server's info",
			slog.String("url", infoURL), slog.Any("err", err))
	}
	if answered {
		// Its answer, whatever it was, holds until the client closes.
		d.mu.Lock()
		d.info[infoURL] = servers
		d.mu.Unlock()
	}
	return servers, nil
}

// fetchICEServers asks infoURL for the ICE servers; answered is set when
// the server answered, even with an error.
func (d *rtcDialer) fetchICEServers(ctx context.Context, infoURL string) (servers []string, answered bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, infoURL, nil)
	if err != nil {
		return nil, false, err
	}
	for k, v := range d.header {
		req.Header[k] = v
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return nil, false, err
	}
	defer func() { _ = resp.Body.Close() }() // nothing to report
	if resp.StatusCode != http.StatusOK {
		return nil, true, fmt.Errorf("GET %s: %s", infoURL, resp.Status)
	}
	var info struct {
		WebRTC *struct {
			ICEServers []string `json:"iceServers"`
		} `json:"webrtc"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&info); err != nil {
		return nil, true, fmt.Errorf("GET %s: %w", infoURL, err)
	}
	if info.WebRTC == nil {
		return nil, true, fmt.Errorf("GET %s: no webrtc section (is WebRTC off on the server?)", infoURL)
	}
	return info.WebRTC.ICEServers, true, nil
}

// rtcChannelConn is a detached data channel: pion/datachannel's
// *DataChannel.
type rtcChannelConn interface {
	datachannel.ReadWriteCloserDeadliner
	WriteDataChannel(p []byte, isString bool) (int, error)
}

type rtcOpened struct {
	dc  rtcChannelConn
	err error
}

// rtcConn is a client WebRTC session: frames on the "topicast" channel,
// msg frames of datagram subscriptions on "topicast-datagram".
type rtcConn struct {
	pc           *webrtc.PeerConnection
	writeTimeout time.Duration
	maxRead      int
	// dc is the "topicast" channel, set by the dial before the conn is
	// handed out; maxWrite is the largest message the server accepts.
	dc       rtcChannelConn
	maxWrite int

	// gone is closed when the peer connection failed or closed;
	// state says which.
	gone      chan struct{}
	goneOnce  sync.Once
	state     webrtc.PeerConnectionState
	aborted   chan struct{} // closed by abort
	abortOnce sync.Once

	// dg is the datagram channel, set before dgReady is closed.
	dg      rtcChannelConn
	dgReady chan struct{}

	// Owned by the reader.
	buf       []byte
	held      []byte // an error frame that may be a close (rtcCloseFollowWait)
	heldClose *CloseError
	closeErr  *CloseError // a close frame came: every read answers it
	dgBuf     []byte

	// wmu serializes writes; wbuf is guarded by it.
	wmu  sync.Mutex
	wbuf []byte
}

var (
	_ transportConn  = (*rtcConn)(nil)
	_ datagramReader = (*rtcConn)(nil)
)

func newRTCConn(pc *webrtc.PeerConnection, writeTimeout time.Duration, maxRead int) *rtcConn {
	c := &rtcConn{
		pc:           pc,
		writeTimeout: writeTimeout,
		maxRead:      maxRead,
		gone:         make(chan struct{}),
		aborted:      make(chan struct{}),
		dgReady:      make(chan struct{}),
		buf:          make([]byte, min(rtcReadBufSize, maxRead+1)),
	}
	// pion calls this on a goroutine of its own, which may close the peer
	// connection: a failed one (ICE lost the server) would otherwise
	// leave the reader waiting.
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s != webrtc.PeerConnectionStateFailed && s != webrtc.PeerConnectionStateClosed {
			return
		}
		c.goneOnce.Do(func() {
			c.state = s
			close(c.gone)
		})
		_ = pc.Close() // ends the channels' reads; abort still joins pion's goroutines
	})
	return c
}

// goneState is the state that closed gone.
func (c *rtcConn) goneState() webrtc.PeerConnectionState {
	<-c.gone
	return c.state
}

// createChannels creates the two channels; the "topicast" one is handed to
// the returned channel once open.
func (c *rtcConn) createChannels() (<-chan rtcOpened, error) {
	dc, err := c.pc.CreateDataChannel(rtcChannel, nil)
	if err != nil {
		return nil, err
	}
	opened := make(chan rtcOpened, 1)
	dc.OnOpen(func() {
		rw, err := detach(dc)
		opened <- rtcOpened{dc: rw, err: err}
	})
	unordered, noRetransmit := false, uint16(0)
	dg, err := c.pc.CreateDataChannel(rtcDatagramChannel, &webrtc.DataChannelInit{
		Ordered: &unordered, MaxRetransmits: &noRetransmit,
	})
	if err != nil {
		return nil, err
	}
	dg.OnOpen(func() {
		rw, err := detach(dg)
		if err != nil {
			return // readDatagram waits until abort: the server's datagrams come over the stream
		}
		c.dg = rw
		close(c.dgReady)
	})
	return opened, nil
}

func detach(dc *webrtc.DataChannel) (rtcChannelConn, error) {
	rw, err := dc.DetachWithDeadline()
	if err != nil {
		return nil, err
	}
	cc, ok := rw.(rtcChannelConn)
	if !ok {
		_ = rw.Close() // unusable
		return nil, fmt.Errorf("topicast: pion's detached channel is a %T", rw)
	}
	return cc, nil
}

// readMessage reads the next message of the channel into c.buf, growing
// it for a larger one up to maxRead.
func (c *rtcConn) readMessage() (int, error) {
	if len(c.buf) > maxKeptReadBuf {
		c.buf = make([]byte, min(rtcReadBufSize, c.maxRead+1))
	}
	for {
		n, err := c.dc.Read(c.buf)
		if !errors.Is(err, io.ErrShortBuffer) {
			return n, err
		}
		// The message waits in SCTP for a larger buffer.
		if len(c.buf) > c.maxRead {
			return 0, ErrMessageTooLarge
		}
		c.buf = make([]byte, min(2*len(c.buf), c.maxRead+1))
	}
}

// readFrames returns the next channel message: frames joined by "\n". The
// server closes a session by sending an error frame with the close code's
// name, with neither id nor topic, then closing the peer connection: that
// frame becomes a *CloseError, as a WebSocket close frame does.
func (c *rtcConn) readFrames() ([]byte, error) {
	if c.closeErr != nil {
		return nil, c.closeErr
	}
	for {
		if c.held != nil {
			_ = c.dc.SetReadDeadline(time.Now().Add(rtcCloseFollowWait)) // always nil
		}
		n, err := c.readMessage()
		if c.held != nil {
			_ = c.dc.SetReadDeadline(time.Time{}) // always nil
		}
		if err != nil {
			if c.held != nil {
				held, ce := c.held, c.heldClose
				c.held, c.heldClose = nil, nil
				if isTimeout(err) {
					return held, nil // no close followed: an ordinary error frame
				}
				c.closeErr = ce
				return nil, ce
			}
			return nil, c.readError(err)
		}
		msg := c.buf[:n]
		if c.held != nil {
			// Data followed: the held frame was no close.
			msg = append(append(c.held, '\n'), msg...)
			c.held, c.heldClose = nil, nil
		}
		rest, last := lastFrame(msg)
		ce, ambiguous := closeFrame(last)
		switch {
		case ce == nil:
			return msg, nil
		case !ambiguous:
			c.closeErr = ce
		default:
			c.held, c.heldClose = bytes.Clone(last), ce
		}
		if len(rest) > 0 {
			return rest, nil
		}
		if c.closeErr != nil {
			return nil, c.closeErr
		}
	}
}

// readError describes the end of the channel without a close frame: an
// abnormal close, after which the client reconnects.
func (c *rtcConn) readError(err error) error {
	select {
	case <-c.aborted:
		return err
	default:
	}
	return fmt.Errorf("%w: %w", errRTCEnded, err)
}

// errRTCEnded is the cause of an abnormal end of a WebRTC session.
var errRTCEnded = fmt.Errorf("topicast: the webrtc session ended without a close frame: %w", net.ErrClosed)

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// lastFrame splits msg before its last non-empty frame.
func lastFrame(msg []byte) (rest, last []byte) {
	end := len(msg)
	for end > 0 && msg[end-1] == '\n' {
		end--
	}
	i := bytes.LastIndexByte(msg[:end], '\n')
	return msg[:max(i, 0)], msg[i+1 : end]
}

// closeFrame returns the close that frame announces, if it is an error
// frame with neither id nor topic whose code names a close code.
// ambiguous is set when the name is also an error code: the frame is a
// close only if the end of the peer connection follows.
func closeFrame(frame []byte) (ce *CloseError, ambiguous bool) {
	if !bytes.Contains(frame, []byte(`"error"`)) {
		return nil, false
	}
	var f struct {
		Op      string `json:"op"`
		ID      uint64 `json:"id"`
		Topic   string `json:"topic"`
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(frame, &f) != nil || f.Op != "error" || f.ID != 0 || f.Topic != "" {
		return nil, false
	}
	code, ok := parseDisconnectCode(f.Code)
	if !ok {
		return nil, false
	}
	return &CloseError{Code: code, Reason: f.Message}, wire.ParseErrorCode(f.Code).String() == f.Code
}

// parseDisconnectCode reads a close code's name (wire.DisconnectCode's
// String): "slow_consumer", or "code_4000" for one without a name.
func parseDisconnectCode(name string) (wire.DisconnectCode, bool) {
	if code, ok := wire.ParseDisconnectCode(name); ok {
		return code, true
	}
	if n, ok := strings.CutPrefix(name, "code_"); ok {
		if v, err := strconv.ParseUint(n, 10, 16); err == nil && v >= 1000 {
			return wire.DisconnectCode(v), true
		}
	}
	return 0, false
}

// writeFrames sends frames joined by "\n" as one text message, or as
// several split between frames when they are over the server's largest
// message.
func (c *rtcConn) writeFrames(frames [][]byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	err := c.dc.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	for i := 0; err == nil && i < len(frames); {
		if len(frames[i]) > c.maxWrite {
			return fmt.Errorf("topicast: a frame of %d bytes is over the webrtc channel's largest message (%d bytes)",
				len(frames[i]), c.maxWrite)
		}
		b := append(c.wbuf[:0], frames[i]...)
		for i++; i < len(frames) && len(b)+1+len(frames[i]) <= c.maxWrite; i++ {
			b = append(append(b, '\n'), frames[i]...)
		}
		_, err = c.dc.WriteDataChannel(b, true)
		if cap(b) <= maxKeptWriteBuf {
			c.wbuf = b[:0]
		} else {
			c.wbuf = nil
		}
	}
	return err
}

// readDatagram returns the next message of the datagram channel.
func (c *rtcConn) readDatagram() ([]byte, error) {
	select {
	case <-c.dgReady:
	case <-c.aborted:
		return nil, net.ErrClosed
	}
	if c.dgBuf == nil {
		c.dgBuf = make([]byte, 2048)
	}
	for {
		n, err := c.dg.Read(c.dgBuf)
		switch {
		case err == nil:
			return bytes.Clone(c.dgBuf[:n]), nil
		case !errors.Is(err, io.ErrShortBuffer):
			return nil, err
		case len(c.dgBuf) > c.maxRead:
			return nil, ErrMessageTooLarge
		}
		c.dgBuf = make([]byte, min(2*len(c.dgBuf), c.maxRead+1))
	}
}

// sendClose ends the session: over WebRTC the client closes its peer
// connection (the server needs no close frame), and the reader returns.
func (c *rtcConn) sendClose(wire.DisconnectCode, string) { c.abort() }

// abort closes the peer connection and waits for the goroutines pion
// started for it.
func (c *rtcConn) abort() {
	c.abortOnce.Do(func() {
		close(c.aborted)
		_ = c.pc.GracefulClose() // errors of closing a closed transport: nothing to do
	})
}

// pionLoggers routes pion's logs to Config.Logger: warnings and errors at
// debug level, the rest below it (slog.LevelDebug-4), trace never.
type pionLoggers struct{ log *slog.Logger }

func (f pionLoggers) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log, scope: scope}
}

type pionLogger struct {
	log   *slog.Logger
	scope string
}

const pionInfoLevel = slog.LevelDebug - 4

func (l pionLogger) logf(level slog.Level, format string, args ...any) {
	if !l.log.Enabled(context.Background(), level) {
		return
	}
	l.log.LogAttrs(context.Background(), level, "pion: "+fmt.Sprintf(format, args...), slog.String("scope", l.scope))
}

func (pionLogger) Trace(string)                     {}
func (pionLogger) Tracef(string, ...any)            {}
func (l pionLogger) Debug(msg string)               { l.logf(pionInfoLevel, "%s", msg) }
func (l pionLogger) Debugf(format string, a ...any) { l.logf(pionInfoLevel, format, a...) }
func (l pionLogger) Info(msg string)                { l.logf(pionInfoLevel, "%s", msg) }
func (l pionLogger) Infof(format string, a ...any)  { l.logf(pionInfoLevel, format, a...) }
func (l pionLogger) Warn(msg string)                { l.logf(slog.LevelDebug, "%s", msg) }
func (l pionLogger) Warnf(format string, a ...any)  { l.logf(slog.LevelDebug, format, a...) }
func (l pionLogger) Error(msg string)               { l.logf(slog.LevelDebug, "%s", msg) }
func (l pionLogger) Errorf(format string, a ...any) { l.logf(slog.LevelDebug, format, a...) }
