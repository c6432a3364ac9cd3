package loadbench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// errParentGone is the cause of a worker's end when its stdin closed
// before the run did: the parent process ended.
var errParentGone = errors.New("loadbench: the parent process is gone (stdin closed)")

const (
	// workerProgressEvery is how often a worker reports its counts.
	workerProgressEvery = 200 * time.Millisecond
	// workerGrace bounds how long Run waits for a worker's result after
	// telling it to close, and then for its exit, before killing it.
	workerGrace = 10 * time.Second
	// maxWorkerLine bounds one line of a worker: a result holds a
	// histogram (a few thousand buckets) and a ready line a count per
	// topic.
	maxWorkerLine = 64 << 20
)

// Share is one process's part of a run's subscribers: those numbered
// Offset to Offset+Conns-1 over the whole run. Subscriber i takes topic
// i%Topics, node i%len(URLs) and source address 127.0.0.2+i/SourceAddrs in
// whichever process connects it, so the processes' subscribers never
// collide and an address holds SourceAddrs connections machine-wide.
type Share struct {
	Offset int `json:"offset"`
	Conns  int `json:"conns"`
}

// String returns "offset:conns", the form ParseShare reads.
func (s Share) String() string { return fmt.Sprintf("%d:%d", s.Offset, s.Conns) }

// ParseShare reads the "offset:conns" form of a Share.
func ParseShare(v string) (Share, error) {
	var s Share
	if _, err := fmt.Sscanf(v, "%d:%d", &s.Offset, &s.Conns); err != nil {
		return Share{}, fmt.Errorf("loadbench: share %q: want offset:conns: %w", v, err)
	}
	if s.Offset < 0 || s.Conns <= 0 {
		return Share{}, fmt.Errorf("loadbench: share %q: offset must be at least 0 and conns positive", v)
	}
	return s, nil
}

// splitConns cuts conns into procs contiguous shares whose sizes differ by
// at most one.
func splitConns(conns, procs int) []Share {
	out := make([]Share, procs)
	for k := range out {
		lo, hi := k*conns/procs, (k+1)*conns/procs
		out[k] = Share{Offset: lo, Conns: hi - lo}
	}
	return out
}

// Worker is a worker process that Config.StartWorker started: Run writes
// its commands to In, one JSON object a line, and reads the lines of
// RunWorker from Out.
type Worker struct {
	In  io.WriteCloser
	Out io.Reader
	// Wait waits for the worker to end; Run calls it after reading Out to
	// its end, or after cancelling the worker's context.
	Wait func() error
}

// workerMsg is one line from a worker to Run.
type workerMsg struct {
	Ready    *workerReady    `json:"ready,omitempty"`
	Progress *workerProgress `json:"progress,omitempty"`
	Result   *tally          `json:"result,omitempty"`
}

// workerReady says a worker's connect phase ended.
type workerReady struct {
	Conns         int     `json:"conns"`
	ConnectErrors int     `json:"connect_errors"`
	SubsPerTopic  []int64 `json:"subs_per_topic"`
}

// workerProgress is a worker's counts so far, for the drain, the progress
// bar and the timeline of Run.
type workerProgress struct {
	Connected int64 `json:"connected"`
	Delivered int64 `json:"delivered"`
}

// parentMsg is one line from Run to a worker.
type parentMsg struct {
	// Published ends the publish phase: the publishes answered, and the
	// highest seq answered, by topic.
	Published *publishedMsg `json:"published,omitempty"`
	// Close tells the worker to close its connections and send its result.
	Close bool `json:"close,omitempty"`
}

type publishedMsg struct {
	Counts  []int64  `json:"counts"`
	LastSeq []uint64 `json:"last_seq"`
}

// tally is the subscriber side of a report: what the subscribers of one
// process saw, or of several once added up.
type tally struct {
	Conns         int   `json:"conns"`
	ConnectErrors int   `json:"connect_errors"`
	Disconnects   int   `json:"disconnects"`
	Expected      int64 `json:"expected"`
	Delivered     int64 `json:"delivered"`
	Gaps          int64 `json:"gaps"`
	Duplicates    int64 `json:"duplicates"`
	OutOfOrder    int64 `json:"out_of_order"`
	Resets        int64 `json:"resets"`
	BadFrames     int64 `json:"bad_frames"`
	// LastDelivery is the time of the last delivery, Unix nanoseconds, or
	// zero. The processes of a run share the machine's clock.
	LastDelivery int64 `json:"last_delivery"`
	// Nodes are the subscribers and deliveries by node, in the order of
	// Config.URLs.
	Nodes   []nodeTally  `json:"nodes"`
	Errors  []ErrorCount `json:"errors,omitempty"`
	Latency *Histogram   `json:"latency"`
}

type nodeTally struct {
	Conns     int   `json:"conns"`
	Delivered int64 `json:"delivered"`
}

// add adds o's counts, nodes and latencies to t; errors are left to the
// caller's errorLog.
func (t *tally) add(o *tally) {
	t.Conns += o.Conns
	t.ConnectErrors += o.ConnectErrors
	t.Disconnects += o.Disconnects
	t.Expected += o.Expected
	t.Delivered += o.Delivered
	t.Gaps += o.Gaps
	t.Duplicates += o.Duplicates
	t.OutOfOrder += o.OutOfOrder
	t.Resets += o.Resets
	t.BadFrames += o.BadFrames
	t.LastDelivery = max(t.LastDelivery, o.LastDelivery)
	for i, n := range o.Nodes {
		if i < len(t.Nodes) {
			t.Nodes[i].Conns += n.Conns
			t.Nodes[i].Delivered += n.Delivered
		}
	}
	if o.Latency != nil {
		if t.Latency == nil {
			t.Latency = new(Histogram)
		}
		t.Latency.Merge(o.Latency)
	}
}

// remote is Run's side of one worker.
type remote struct {
	num   int // 1 and up; Run's own share is 0
	share Share
	w     *Worker
	enc   *json.Encoder // on w.In; used by Run's goroutine only
	ready chan struct{} // closed when the ready line came
	got   chan struct{} // closed when the result came
	done  chan struct{} // closed when w.Out ended

	connected atomic.Int64
	delivered atomic.Int64

	// Written by the reading goroutine before it closes ready (readyMsg),
	// got (result) or done (err).
	readyMsg workerReady
	result   *tally
	err      error
}

// startWorkers starts a worker for each share.
func (r *run) startWorkers(ctx context.Context, shares []Share) error {
	if len(shares) == 0 {
		return nil
	}
	ctx, r.cancelWorkers = context.WithCancel(ctx)
	for k, sh := range shares {
		w, err := r.cfg.StartWorker(ctx, sh)
		if err != nil {
			return fmt.Errorf("loadbench: starting worker %d: %w", k+1, err)
		}
		rw := &remote{num: k + 1, share: sh, w: w, enc: json.NewEncoder(w.In),
			ready: make(chan struct{}), got: make(chan struct{}), done: make(chan struct{})}
		r.remotes = append(r.remotes, rw)
		r.remoteReaders.Go(rw.readLoop)
	}
	return nil
}

// readLoop reads the worker's lines until its Out ends.
func (w *remote) readLoop() {
	defer close(w.done)
	sc := bufio.NewScanner(w.w.Out)
	sc.Buffer(make([]byte, 0, 64<<10), maxWorkerLine)
	ready := false
	for sc.Scan() {
		var m workerMsg
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			if w.err == nil {
				w.err = fmt.Errorf("bad line: %w", err)
			}
			continue
		}
		switch {
		case m.Progress != nil:
			w.connected.Store(m.Progress.Connected)
			w.delivered.Store(m.Progress.Delivered)
		case m.Ready != nil && !ready:
			w.readyMsg = *m.Ready
			w.connected.Store(int64(m.Ready.Conns))
			ready = true
			close(w.ready)
		case m.Result != nil && w.result == nil:
			w.result = m.Result
			close(w.got)
		}
	}
	if err := sc.Err(); err != nil && w.err == nil {
		w.err = err
	}
	// Whatever follows a line too long, keep the worker from blocking.
	io.Copy(io.Discard, w.w.Out)
}

// waitReady waits until every worker connected its share or ended.
func (r *run) waitReady(ctx context.Context) {
	r.remoteSubsPerTopic = make([]int64, len(r.topics))
	for _, w := range r.remotes {
		select {
		case <-w.ready:
			for t, n := range w.readyMsg.SubsPerTopic {
				if t < len(r.remoteSubsPerTopic) {
					r.remoteSubsPerTopic[t] += n
				}
			}
		case <-w.done:
		case <-ctx.Done():
			return
		}
	}
}

// sendPublished tells the workers what was published.
func (r *run) sendPublished() {
	if len(r.remotes) == 0 {
		return
	}
	m := &publishedMsg{Counts: make([]int64, len(r.topics)), LastSeq: make([]uint64, len(r.topics))}
	for t := range r.topics {
		m.Counts[t] = r.pub.published[t].Load()
		m.LastSeq[t] = r.pub.lastSeq[t].Load()
	}
	for _, w := range r.remotes {
		if err := w.enc.Encode(parentMsg{Published: m}); err != nil {
			r.errs.add(fmt.Errorf("worker %d: %w", w.num, err))
		}
	}
}

// sendClose tells the workers to close their connections and report.
func (r *run) sendClose() {
	for _, w := range r.remotes {
		// A worker that cannot be told is gone; collectWorkers says so.
		w.enc.Encode(parentMsg{Close: true})
	}
}

// collectWorkers waits for the workers' results, closes their stdin, and
// waits for them to exit, killing those that take longer than workerGrace.
func (r *run) collectWorkers() {
	if r.cancelWorkers == nil {
		return
	}
	defer r.cancelWorkers()
	timeout := time.NewTimer(workerGrace)
	defer timeout.Stop()
	for _, w := range r.remotes {
		select {
		case <-w.got:
		case <-w.done:
		case <-timeout.C:
			r.cancelWorkers() // the others' results are late too
		}
	}
	// With stdin closed, a worker exits; its Out then ends.
	for _, w := range r.remotes {
		w.w.In.Close()
	}
	kill := time.AfterFunc(workerGrace, r.cancelWorkers)
	for _, w := range r.remotes {
		<-w.done
		if err := w.w.Wait(); err != nil && w.result == nil && w.err == nil {
			w.err = err
		}
	}
	kill.Stop()
	r.remoteReaders.Wait()
}

// mergeRemotes adds the workers' results to t. A worker without a result
// counts its subscribers as failed: those that connected as disconnects,
// the others as connect errors, and what they were due as lost.
func (r *run) mergeRemotes(t *tally) {
	for _, w := range r.remotes {
		if w.result != nil {
			t.add(w.result)
			for _, e := range w.result.Errors {
				r.errs.addCount(fmt.Sprintf("worker %d: %s", w.num, e.Message), e.Count)
			}
			continue
		}
		msg := "ended without a result"
		if w.err != nil {
			msg += ": " + w.err.Error()
		}
		r.errs.add(fmt.Errorf("worker %d: %s", w.num, msg))
		select {
		case <-w.ready:
			t.Disconnects += w.readyMsg.Conns
			t.Conns += w.readyMsg.Conns
			t.ConnectErrors += w.share.Conns - w.readyMsg.Conns
			for tp, n := range w.readyMsg.SubsPerTopic {
				if tp < len(r.topics) {
					t.Expected += r.pub.published[tp].Load() * n
				}
			}
		default:
			t.ConnectErrors += w.share.Conns
		}
	}
}

// RunWorker is a worker process of a Run with Procs > 1: it connects
// share's subscribers of cfg (the Config of the Run; Procs and StartWorker
// are ignored), reports on out and takes commands from in, one JSON object
// a line each:
//
//	out: {"progress":{...}} every 200 ms, {"ready":{...}} once connected,
//	     {"result":{...}} last (counts, checks and latency histogram)
//	in:  {"published":{...}} when publishing ended (counts and last seqs by
//	     topic), then {"close":true}
//
// It closes its connections and returns when in ends (the parent is gone),
// ctx is done or the close came and the result is sent.
func RunWorker(ctx context.Context, cfg Config, share Share, in io.Reader, out io.Writer) error {
	// The worker checks the run's config as its parent did (Procs kept:
	// the per-process bound is on its share), but starts no worker.
	cfg.StartWorker, cfg.Progress, cfg.worker = nil, nil, true
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	if share.Offset < 0 || share.Conns <= 0 || share.Offset+share.Conns > cfg.Conns {
		return fmt.Errorf("loadbench: share %v out of %d conns", share, cfg.Conns)
	}
	var wt *wtClient
	var rtc *rtcClient
	switch cfg.Transport {
	case TransportWebTransport:
		var err error
		if wt, err = newWTClient(ctx, &cfg); err != nil {
			return err
		}
		defer wt.close()
	case TransportWebRTC:
		var err error
		if rtc, err = newRTCClient(ctx, &cfg); err != nil {
			return err
		}
		defer rtc.close()
	}
	ctx, cancelLimit := context.WithTimeoutCause(ctx, cfg.runLimit(), errOverrun)
	defer cancelLimit()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	cmds := make(chan parentMsg, 4)
	stdinDone := make(chan struct{})
	go func() {
		defer close(stdinDone)
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 0, 64<<10), maxWorkerLine)
		for sc.Scan() {
			var m parentMsg
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				select {
				case cmds <- m:
				default: // more commands than the protocol has
				}
			}
		}
		cancel(errParentGone)
	}()

	r := newRun(&cfg, share)
	r.wt, r.rtc = wt, rtc
	o := &workerOut{enc: json.NewEncoder(out)}
	stopProgress := make(chan struct{})
	var progress sync.WaitGroup
	progress.Go(func() {
		tick := time.NewTicker(workerProgressEvery)
		defer tick.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-tick.C:
				o.send(workerMsg{Progress: &workerProgress{Connected: r.connected.Load(), Delivered: r.deliveredSoFar()}})
			}
		}
	})

	r.connect(ctx)
	ready := &workerReady{Conns: int(r.connected.Load()), ConnectErrors: int(r.connectErrors.Load()),
		SubsPerTopic: make([]int64, len(r.topics))}
	for t := range r.topics {
		ready.SubsPerTopic[t] = r.subsPerTopic[t].Load()
	}
	o.send(workerMsg{Ready: ready})

	next := func() (parentMsg, bool) {
		select {
		case m := <-cmds:
			return m, true
		case <-ctx.Done():
			return parentMsg{}, false
		}
	}
	for {
		m, ok := next()
		if !ok || m.Close {
			break
		}
		if p := m.Published; p != nil {
			for t := range r.topics {
				if t < len(p.Counts) && t < len(p.LastSeq) {
					r.pub.published[t].Store(p.Counts[t])
					r.pub.lastSeq[t].Store(p.LastSeq[t])
				}
			}
		}
	}
	r.close(ctx.Err() == nil)
	close(stopProgress)
	progress.Wait()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if err := o.send(workerMsg{Result: r.tally()}); err != nil {
		return err
	}
	// The parent closes stdin once it has the result; a parent that does
	// not leaves the reading goroutine behind when the process exits.
	grace := time.NewTimer(workerGrace)
	defer grace.Stop()
	select {
	case <-stdinDone:
	case <-grace.C:
	}
	return nil
}

// workerOut writes a worker's lines; it is goroutine-safe.
type workerOut struct {
	mu  sync.Mutex
	enc *json.Encoder
	err error // the first write error; later lines are dropped
}

func (o *workerOut) send(m workerMsg) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err == nil {
		o.err = o.enc.Encode(m)
	}
	return o.err
}
