package loadbench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNoSubscribers is returned by Run when no subscriber could connect.
var ErrNoSubscribers = errors.New("loadbench: no subscriber connected")

// errOverrun is the cause of the safety deadline of Run.
var errOverrun = errors.New("loadbench: run overran its phases")

const (
	// progressEvery is the redraw period of the progress bar.
	progressEvery = 500 * time.Millisecond
	// drainPoll is how often the drain checks whether everything arrived.
	drainPoll = 50 * time.Millisecond
	// closeGrace bounds the close handshake of all connections together.
	closeGrace = 2 * time.Second
	// histShards spreads latency records over several histograms, so that
	// readers on different cores rarely add to the same cache line.
	histShards = 8
)

// Phases of a run, shown by the progress bar.
const (
	phaseConnect int32 = iota
	phasePublish
	phaseDrain
	phaseClose
)

var phaseNames = [...]string{"connecting", "publishing", "draining", "closing"}

// Run connects cfg.Conns subscribers, publishes at cfg.Rate for
// cfg.Duration, waits up to cfg.Drain for the last deliveries, closes every
// connection and reports what was delivered and how fast.
//
// Run returns after every goroutine it started ended. When ctx is done it
// stops early and returns the report so far with context.Cause(ctx). It
// returns ErrNoSubscribers (and a report) when no subscriber connected, and
// an error without a report for an invalid cfg or, over WebTransport and
// WebRTC, when GET /v1/info cannot tell the endpoint cfg leaves zero.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	parent := ctx
	var wt *wtClient
	var rtc *rtcClient
	switch cfg.Transport {
	case TransportWebTransport:
		var err error
		if wt, err = newWTClient(ctx, &cfg); err != nil {
			return nil, err
		}
	case TransportWebRTC:
		var err error
		if rtc, err = newRTCClient(ctx, &cfg); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeoutCause(ctx, cfg.runLimit(), errOverrun)
	defer cancel()

	shares := splitConns(cfg.Conns, cfg.Procs)
	r := newRun(&cfg, shares[0])
	r.wt, r.rtc = wt, rtc
	progressDone := make(chan struct{})
	var progress sync.WaitGroup
	if cfg.Progress != nil {
		progress.Go(func() { r.progressLoop(progressDone) })
	}

	nodes := newNodeSampler(&cfg)
	var samples [3][]nodeSample // before connecting, connected, end
	samples[0] = nodes.sample(ctx)
	connectStart := time.Now()
	err := r.startWorkers(ctx, shares[1:])
	if err == nil {
		r.connect(ctx)
		r.waitReady(ctx)
		r.connectTime = time.Since(connectStart)
		samples[1] = nodes.sample(ctx)
		if r.connectedAll() > 0 && ctx.Err() == nil {
			r.phase.Store(phasePublish)
			tl := r.startTimeline()
			r.publish(ctx)
			r.sendPublished()
			r.phase.Store(phaseDrain)
			r.drain(ctx)
			r.timeline = tl.stop()
			samples[2] = nodes.sample(ctx)
		}
	}
	r.phase.Store(phaseClose)
	r.sendClose()
	r.close(ctx.Err() == nil)
	r.collectWorkers()
	nodes.close()
	if wt != nil {
		wt.close()
	}
	if rtc != nil {
		rtc.close()
	}
	close(progressDone)
	progress.Wait()
	if err != nil {
		return nil, err
	}

	rep := r.report(samples)
	switch {
	case parent.Err() != nil:
		return rep, context.Cause(parent)
	case ctx.Err() != nil:
		return rep, context.Cause(ctx)
	case rep.Conns == 0:
		if len(rep.Errors) > 0 {
			return rep, fmt.Errorf("%w: %s", ErrNoSubscribers, rep.Errors[0].Message)
		}
		return rep, ErrNoSubscribers
	}
	return rep, nil
}

// runLimit bounds a whole run. Each phase is bounded on its own; this only
// guards against a phase that would not be.
func (c *Config) runLimit() time.Duration {
	return c.ConnectTimeout + c.DialTimeout + c.Duration + 2*c.Drain + c.RequestTimeout + 2*closeGrace + 3*nodeSampleTimeout + workerGrace + 10*time.Second
}

// run is the state of one Run.
type run struct {
	cfg    *Config
	topics []string
	base   time.Time
	errs   *errorLog
	hists  []Histogram
	pub    *publisher
	wt     *wtClient  // nil but over WebTransport
	rtc    *rtcClient // nil but over WebRTC
	phase  atomic.Int32

	share         Share                        // this process's subscribers
	subs          []atomic.Pointer[subscriber] // by index in share; nil until connected
	subsPerTopic  []atomic.Int64
	connected     atomic.Int64
	connectErrors atomic.Int64
	readers       sync.WaitGroup

	// The other processes of the run, when this one is Run's.
	remotes            []*remote
	remoteSubsPerTopic []int64 // summed over remotes, written by waitReady
	cancelWorkers      context.CancelFunc
	remoteReaders      sync.WaitGroup

	// Written by Run's goroutine, read after the phases.
	pubStart, pubEnd time.Duration // since base
	timeline         []TimelinePoint
	connectTime      time.Duration
}

func newRun(cfg *Config, share Share) *run {
	topics := make([]string, cfg.Topics)
	for i := range topics {
		topics[i] = "bench." + strconv.Itoa(i)
	}
	errs := newErrorLog(cfg.Logger)
	return &run{
		cfg:          cfg,
		topics:       topics,
		base:         time.Now(),
		errs:         errs,
		hists:        make([]Histogram, histShards),
		pub:          newPublisher(cfg, topics, errs),
		share:        share,
		subs:         make([]atomic.Pointer[subscriber], share.Conns),
		subsPerTopic: make([]atomic.Int64, cfg.Topics),
	}
}

// connect sets up the subscribers, DialConcurrency at a time, for at most
// ConnectTimeout. Each one's reader goroutine starts once it is subscribed.
func (r *run) connect(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ConnectTimeout)
	defer cancel()
	var next atomic.Int64
	var workers sync.WaitGroup
	for range min(r.cfg.DialConcurrency, len(r.subs)) {
		workers.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(r.subs) {
					return
				}
				g := r.share.Offset + i // the index over the whole run
				if ctx.Err() != nil {
					r.connectErrors.Add(1)
					continue
				}
				var s *subscriber
				var err error
				switch {
				case r.wt != nil:
					s, err = r.wt.dial(ctx, r.cfg, g, r.topics, &r.hists[i%histShards], r.base)
				case r.rtc != nil:
					s, err = r.rtc.dial(ctx, r.cfg, g, r.topics, &r.hists[i%histShards], r.base)
				default:
					s, err = dialSubscriber(ctx, r.cfg, g, r.topics, &r.hists[i%histShards], r.base)
				}
				if err != nil {
					r.connectErrors.Add(1)
					r.errs.add(err)
					continue
				}
				r.subs[i].Store(s)
				r.subsPerTopic[s.topic].Add(1)
				r.connected.Add(1)
				r.readers.Go(s.readLoop)
			}
		})
	}
	workers.Wait()
}

// publish runs the publishers until they are done.
func (r *run) publish(ctx context.Context) {
	p := r.pub
	p.start = time.Now()
	p.hardEnd = p.start.Add(r.cfg.Duration + r.cfg.Drain)
	r.pubStart = p.start.Sub(r.base)
	var pubs sync.WaitGroup
	for k := range r.cfg.Publishers {
		pubs.Go(func() { p.run(ctx, k) })
	}
	pubs.Wait()
	r.pubEnd = time.Since(r.base)
	p.close()
}

// drain waits up to Drain for the deliveries still expected, in every
// process of the run.
func (r *run) drain(ctx context.Context) {
	if r.cfg.Drain <= 0 {
		return
	}
	deadline := time.NewTimer(r.cfg.Drain)
	defer deadline.Stop()
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	expected := r.expectedAll()
	for r.deliveredAll() < expected {
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-tick.C:
		}
	}
}

// close ends every connection and waits for the readers. A graceful close
// sends close frames and waits up to closeGrace for the echoes; otherwise
// reads are cut at once.
func (r *run) close(graceful bool) {
	deadline := time.Now().Add(closeGrace)
	for i := range r.subs {
		if s := r.subs[i].Load(); s != nil {
			s.close(graceful && time.Now().Before(deadline), deadline)
		}
	}
	r.readers.Wait()
}

// expected returns the deliveries due to this process's subscribers for the
// publishes answered so far.
func (r *run) expected() int64 {
	var n int64
	for t := range r.topics {
		n += r.pub.published[t].Load() * r.subsPerTopic[t].Load()
	}
	return n
}

// expectedAll is expected over every process of the run.
func (r *run) expectedAll() int64 {
	n := r.expected()
	for t, subs := range r.remoteSubsPerTopic {
		n += r.pub.published[t].Load() * subs
	}
	return n
}

// deliveredAll is deliveredSoFar over every process of the run, as far as
// the workers' last progress lines tell.
func (r *run) deliveredAll() int64 {
	n := r.deliveredSoFar()
	for _, w := range r.remotes {
		n += w.delivered.Load()
	}
	return n
}

// connectedAll is the subscribers connected in every process of the run.
func (r *run) connectedAll() int64 {
	n := r.connected.Load()
	for _, w := range r.remotes {
		n += w.connected.Load()
	}
	return n
}

func (r *run) deliveredSoFar() int64 {
	var n int64
	for i := range r.subs {
		if s := r.subs[i].Load(); s != nil {
			n += s.delivered.Load()
		}
	}
	return n
}

func (r *run) progressLoop(done <-chan struct{}) {
	tick := time.NewTicker(progressEvery)
	defer tick.Stop()
	for {
		select {
		case <-done:
			r.drawProgress()
			io.WriteString(r.cfg.Progress, "\n")
			return
		case <-tick.C:
			r.drawProgress()
		}
	}
}

func (r *run) drawProgress() {
	delivered := r.deliveredAll()
	// Deliveries usually arrive before the publish answer that makes them
	// expected, so "lost" is a lower bound until the drain ends.
	lost := max(r.expectedAll()-delivered, 0)
	fmt.Fprintf(r.cfg.Progress, "\r%-10s  conns %d/%d  published %d  delivered %d  lost %d   ",
		phaseNames[r.phase.Load()], r.connectedAll(), r.cfg.Conns,
		r.pub.publishedTotal(), delivered, lost)
}

// tally sums up this process's subscribers once every goroutine ended.
func (r *run) tally() *tally {
	t := &tally{
		Conns:         int(r.connected.Load()),
		ConnectErrors: int(r.connectErrors.Load()),
		Expected:      r.expected(),
		Nodes:         make([]nodeTally, len(r.cfg.URLs)),
		Latency:       new(Histogram),
	}
	var lastDelivery time.Duration
	for i := range r.subs {
		s := r.subs[i].Load()
		if s == nil {
			continue
		}
		c := &s.check
		// Seqs after the last delivery up to the last published are gaps
		// too; across a reset, seqs of two epochs cannot be compared.
		if last := r.pub.lastSeq[s.topic].Load(); s.resets == 0 && last > c.last {
			c.givenUp += int64(last - c.last)
		}
		t.Delivered += c.delivered
		t.Gaps += c.gaps()
		t.Duplicates += c.duplicates
		t.OutOfOrder += c.outOfOrder
		t.Resets += s.resets
		t.BadFrames += s.badFrames
		t.Nodes[s.node].Conns++
		t.Nodes[s.node].Delivered += c.delivered
		switch {
		case s.readErr != nil:
			t.Disconnects++
			r.errs.add(fmt.Errorf("read: %w", s.readErr))
		case s.ended != "":
			t.Disconnects++
			r.errs.add(errors.New("subscription ended: " + s.ended))
		}
		lastDelivery = max(lastDelivery, s.lastDelivery)
	}
	if lastDelivery > 0 {
		t.LastDelivery = r.base.Add(lastDelivery).UnixNano()
	}
	for i := range r.hists {
		t.Latency.Merge(&r.hists[i])
	}
	t.Errors = r.errs.list()
	return t
}

// report builds the Report of Run once every goroutine ended, from its own
// tally, the workers' and the nodes' samples.
func (r *run) report(samples [3][]nodeSample) *Report {
	t := r.tally()
	r.mergeRemotes(t)
	rep := &Report{
		Procs:          1 + len(r.remotes),
		Conns:          t.Conns,
		ConnectErrors:  t.ConnectErrors,
		ConnectSeconds: r.connectTime.Seconds(),
		Disconnects:    t.Disconnects,
		Topics:         r.cfg.Topics,
		Published:      r.pub.publishedTotal(),
		PublishErrors:  r.pub.failed.Load(),
		Expected:       t.Expected,
		Delivered:      t.Delivered,
		Gaps:           t.Gaps,
		Duplicates:     t.Duplicates,
		OutOfOrder:     t.OutOfOrder,
		Resets:         t.Resets,
		BadFrames:      t.BadFrames,
		Latency:        t.Latency,
		Timeline:       r.timeline,
	}
	if r.pubEnd > 0 {
		rep.Unsent = max(r.pub.total-r.pub.attempted.Load(), 0)
		if d := (r.pubEnd - r.pubStart).Seconds(); d > 0 {
			rep.PublishedPerSec = float64(rep.Published) / d
		}
	}
	rep.Lost = rep.Expected - rep.Delivered
	lastDelivery := r.pubEnd
	if t.LastDelivery > 0 {
		lastDelivery = max(lastDelivery, time.Unix(0, t.LastDelivery).Sub(r.base))
	}
	if d := lastDelivery - r.pubStart; r.pubEnd > 0 && d > 0 {
		rep.Seconds = d.Seconds()
		rep.DeliveriesPerSec = float64(rep.Delivered) / rep.Seconds
	}
	h := rep.Latency
	rep.P50 = durationMs(h.Quantile(0.50))
	rep.P90 = durationMs(h.Quantile(0.90))
	rep.P99 = durationMs(h.Quantile(0.99))
	rep.P999 = durationMs(h.Quantile(0.999))
	rep.Max = durationMs(h.Max())
	rep.Nodes = nodeReports(r.cfg.URLs, t.Nodes, samples)
	rep.Errors = r.errs.list()
	return rep
}
