package loadbench

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gobwas/ws"
	"github.com/pion/datachannel"
	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
)

const (
	// rtcChannel is the label of the protocol's reliable data channel.
	rtcChannel = "topicast"
	// rtcPath is the signalling endpoint under the server's HTTP base.
	rtcPath = "/v1/webrtc"
	// rtcReadBufferSize is a channel's initial read buffer; it doubles for
	// larger messages, up to maxMessageSize.
	rtcReadBufferSize = 4096
	// maxSDPAnswer bounds the answer SDP read from the server.
	maxSDPAnswer = 256 << 10
)

// errMessageTooLong ends a WebRTC subscriber whose channel message outgrows
// maxMessageSize: it only protects the bench from a runaway peer.
var errMessageTooLong = errors.New("loadbench: webrtc message longer than 16 MiB")

// validateRTC checks the WebRTC fields of a Config with its defaults
// applied.
func (c Config) validateRTC() error {
	if c.WebRTCURL == "" {
		return nil
	}
	u, err := url.Parse(c.WebRTCURL)
	if err != nil {
		return fmt.Errorf("loadbench: webrtc url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("loadbench: webrtc url %q: must be http(s)://host:port%s", c.WebRTCURL, rtcPath)
	}
	return nil
}

// resolveRTC fills WebRTCURL, when zero, and returns the ICE servers, from
// GET /v1/info.
func (c *Config) resolveRTC(ctx context.Context) ([]string, error) {
	endpoint := infoEndpoint(c.PublishURL)
	client := &http.Client{
		Timeout:   c.RequestTimeout,
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint, nil)
	if err != nil {
		return nil, fmt.Errorf("loadbench: webrtc info: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("loadbench: webrtc info: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxInfo))
	if err != nil {
		return nil, fmt.Errorf("loadbench: webrtc info: GET %s: %w", endpoint, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("loadbench: webrtc info: GET %s: %s: %s", endpoint, resp.Status, bytes.TrimSpace(body))
	}
	var info struct {
		WebRTC *struct {
			URL        string   `json:"url"`
			ICEServers []string `json:"iceServers"`
		} `json:"webrtc"`
	}
	if err := json.Unmarshal(body, &info); err != nil {
		return nil, fmt.Errorf("loadbench: webrtc info: GET %s: %w", endpoint, err)
	}
	if info.WebRTC == nil {
		if c.WebRTCURL != "" {
			return nil, nil
		}
		return nil, fmt.Errorf("loadbench: GET %s reports no WebRTC endpoint (is the server started with --webrtc off?)", endpoint)
	}
	if c.WebRTCURL == "" {
		// The server's url is relative to its own: where /v1/info is.
		base, err := url.Parse(endpoint)
		if err != nil {
			return nil, fmt.Errorf("loadbench: webrtc info: %w", err)
		}
		ref, err := url.Parse(info.WebRTC.URL)
		if err != nil || info.WebRTC.URL == "" {
			return nil, fmt.Errorf("loadbench: GET %s: webrtc url %q", endpoint, info.WebRTC.URL)
		}
		c.WebRTCURL = base.ResolveReference(ref).String()
	}
	return info.WebRTC.ICEServers, c.validateRTC()
}

// rtcClient holds what the WebRTC subscribers of one run share: pion's API,
// one DTLS certificate (generating one per peer connection would cost more
// than its handshake) and the signalling client.
type rtcClient struct {
	api        *webrtc.API
	cert       webrtc.Certificate
	iceServers []webrtc.ICEServer
	url        string // WebRTCURL with the token
	http       *http.Client
}

// newRTCClient resolves cfg's WebRTC endpoint and prepares the dials.
func newRTCClient(ctx context.Context, cfg *Config) (*rtcClient, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout)
	defer cancel()
	given := cfg.WebRTCURL != ""
	servers, err := cfg.resolveRTC(ctx)
	if err != nil {
		if !given {
			return nil, err
		}
		// The endpoint is known: go on without ICE servers, which a
		// server the bench reaches directly does not need.
		cfg.Logger.Warn("loadbench: no ICE servers from the server's info", "err", err)
		servers = nil
	}
	u, err := url.Parse(cfg.WebRTCURL)
	if err != nil {
		return nil, fmt.Errorf("loadbench: webrtc url: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	cert, err := webrtc.GenerateCertificate(key)
	if err != nil {
		return nil, err
	}
	var se webrtc.SettingEngine
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	se.DetachDataChannels()
	se.EnableDataChannelBlockWrite(true)
	se.LoggerFactory = quietLoggers{}
	if ip := net.ParseIP(u.Hostname()); ip != nil && ip.IsLoopback() || u.Hostname() == "localhost" {
		// One UDP socket per subscriber, on loopback, instead of one per
		// interface.
		se.SetIncludeLoopbackCandidate(true)
		se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	}
	c := &rtcClient{
		api: webrtc.NewAPI(webrtc.WithSettingEngine(se), webrtc.WithMediaEngine(&webrtc.MediaEngine{}),
			webrtc.WithInterceptorRegistry(&interceptor.Registry{})),
		cert: *cert,
		url:  withToken(cfg.WebRTCURL, cfg.Token),
		http: &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: cfg.DialConcurrency}},
	}
	if len(servers) > 0 {
		c.iceServers = []webrtc.ICEServer{{URLs: servers}}
	}
	return c, nil
}

// close ends what the subscribers shared, once every one of them ended.
func (c *rtcClient) close() { c.http.CloseIdleConnections() }

// dial connects subscriber i over WebRTC and subscribes it, all within
// cfg.DialTimeout.
func (c *rtcClient) dial(ctx context.Context, cfg *Config, i int, topics []string, hist *Histogram, base time.Time) (*subscriber, error) {
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	l, err := c.open(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	s := &subscriber{topic: i % len(topics), rtc: l, hist: hist, base: base}
	// This deadline covers the sub and its reply, and makes a cancelled
	// run give up at once.
	stop := context.AfterFunc(ctx, func() { l.dc.SetReadDeadline(aLongTimeAgo) })
	err = s.subscribe(topics[s.topic])
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		l.release()
		if ctx.Err() != nil && !s.subscribed && s.subErr == nil {
			err = fmt.Errorf("%w: %w", errNotSubscribed, ctx.Err())
		}
		return nil, fmt.Errorf("subscribe: %w", err)
	}
	return s, nil
}

// rtcChannelConn is a detached data channel: pion/datachannel's
// *DataChannel.
type rtcChannelConn interface {
	datachannel.ReadWriteCloserDeadliner
	WriteDataChannel(p []byte, isString bool) (int, error)
}

// open sets up a peer connection with the "topicast" channel: an offer
// with every candidate, POSTed, and the answer applied; it returns once
// the channel is open.
func (c *rtcClient) open(ctx context.Context) (*rtcLink, error) {
	pc, err := c.api.NewPeerConnection(webrtc.Configuration{ICEServers: c.iceServers,
		Certificates: []webrtc.Certificate{c.cert}})
	if err != nil {
		return nil, err
	}
	l := &rtcLink{pc: pc}
	ok := false
	defer func() {
		if !ok {
			l.release()
		}
	}()
	// A failed connection (ICE lost the server) ends the reads.
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed {
			pc.Close()
		}
	})
	dc, err := pc.CreateDataChannel(rtcChannel, nil)
	if err != nil {
		return nil, err
	}
	type opened struct {
		dc  rtcChannelConn
		err error
	}
	open := make(chan opened, 1)
	dc.OnOpen(func() {
		raw, err := dc.DetachWithDeadline()
		if err != nil {
			open <- opened{err: err}
			return
		}
		cc, isConn := raw.(rtcChannelConn)
		if !isConn {
			raw.Close()
			open <- opened{err: fmt.Errorf("loadbench: pion's detached channel is a %T", raw)}
			return
		}
		open <- opened{dc: cc}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return nil, err
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return nil, err
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return nil, fmt.Errorf("gather ICE candidates: %w", ctx.Err())
	}
	answer, err := c.signal(ctx, pc.LocalDescription().SDP)
	if err != nil {
		return nil, err
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return nil, fmt.Errorf("the server's answer: %w", err)
	}
	select {
	case o := <-open:
		if o.err != nil {
			return nil, o.err
		}
		l.dc = o.dc
	case <-ctx.Done():
		return nil, fmt.Errorf("wait for the %s channel: %w", rtcChannel, ctx.Err())
	}
	ok = true
	return l, nil
}

// signal POSTs the offer and returns the answer.
func (c *rtcClient) signal(ctx context.Context, offer string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, strings.NewReader(offer))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/sdp")
	resp, err := c.http.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxSDPAnswer))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("the server answered %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return string(body), nil
}

// rtcLink is one subscriber's WebRTC side: its peer connection and the
// detached "topicast" channel. The reader goroutine owns buf and releases
// the rest when it ends.
type rtcLink struct {
	pc  *webrtc.PeerConnection
	dc  rtcChannelConn
	buf []byte
}

// read returns the next channel message: frames joined by "\n". The slice
// is valid until the next call.
func (l *rtcLink) read() ([]byte, error) {
	if l.buf == nil {
		l.buf = make([]byte, rtcReadBufferSize)
	}
	for {
		n, err := l.dc.Read(l.buf)
		if !errors.Is(err, io.ErrShortBuffer) {
			return l.buf[:n], err
		}
		if len(l.buf) >= maxMessageSize {
			return nil, errMessageTooLong
		}
		l.buf = make([]byte, min(2*len(l.buf), maxMessageSize))
	}
}

// release closes the peer connection and waits for pion's goroutines.
func (l *rtcLink) release() {
	l.pc.GracefulClose() // errors of closing what is closed: nothing to do
}

// writeRTC sends payload as one text message on the channel.
func (s *subscriber) writeRTC(op ws.OpCode, payload []byte, deadline time.Time) error {
	if op != ws.OpText {
		return fmt.Errorf("loadbench: no %v frame over webrtc", op)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if err := s.rtc.dc.SetWriteDeadline(deadline); err != nil {
		return err
	}
	_, err := s.rtc.dc.WriteDataChannel(payload, true)
	return err
}

// closeRTC makes the reader end; it then closes the peer connection (a
// client ends a WebRTC session that way: no close frame to wait for).
func (s *subscriber) closeRTC() {
	s.closing.Store(true)
	s.rtc.dc.SetReadDeadline(aLongTimeAgo)
}

// quietLoggers drops pion's logs: a bench of thousands of peer
// connections would print its warnings thousands of times, and the run's
// errors say what went wrong.
type quietLoggers struct{}

func (quietLoggers) NewLogger(string) logging.LeveledLogger { return quietLogger{} }

type quietLogger struct{}

func (quietLogger) Trace(string)          {}
func (quietLogger) Tracef(string, ...any) {}
func (quietLogger) Debug(string)          {}
func (quietLogger) Debugf(string, ...any) {}
func (quietLogger) Info(string)           {}
func (quietLogger) Infof(string, ...any)  {}
func (quietLogger) Warn(string)           {}
func (quietLogger) Warnf(string, ...any)  {}
func (quietLogger) Error(string)          {}
func (quietLogger) Errorf(string, ...any) {}
