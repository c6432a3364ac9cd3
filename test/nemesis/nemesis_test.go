package nemesis

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/topicast/topicast/internal/testutil"
)

// Fault kinds.
const (
	faultKill       = "kill"        // kill -9 a node, restart it (at once, or past failure detection)
	faultTerm       = "term"        // SIGTERM a node, wait for its exit, restart it
	faultPause      = "pause"       // SIGSTOP a node past failure detection, SIGCONT
	faultIsolate    = "isolate"     // cut one node from the other nodes
	faultSplit      = "split"       // a minority of the nodes from the majority
	faultBridge     = "bridge"      // two halves that only one node sees both of
	faultLoss       = "loss"        // drop a share of the packets between nodes
	faultRedisKill  = "redis-kill"  // kill -9 Redis, restart it (its AOF keeps the data)
	faultRedisPause = "redis-pause" // SIGSTOP Redis, SIGCONT
	faultEtcdKill   = "etcd-kill"   // kill -9 etcd, restart it
	faultEtcdPause  = "etcd-pause"  // SIGSTOP etcd, SIGCONT
	faultNone       = "none"        // nothing: a control cycle
)

// faultKinds lists the kinds a run can use: Redis faults in Redis mode,
// etcd faults with etcd membership.
func faultKinds(mode, membership string) []string {
	kinds := []string{faultKill, faultTerm, faultPause, faultIsolate, faultSplit, faultBridge, faultLoss}
	if mode == ModeRedis {
		kinds = append(kinds, faultRedisKill, faultRedisPause)
	}
	if membership == "etcd" {
		kinds = append(kinds, faultEtcdKill, faultEtcdPause)
	}
	return kinds
}

// runConfig describes one nemesis run.
type runConfig struct {
	name       string
	mode       string // ModeRedis or ModeMemory
	membership string // static or etcd
	nodes      int
	seed       uint64
	// schedule lists one fault kind per cycle; when empty, cycles random
	// kinds are drawn from the seed.
	schedule []string
	cycles   int
	// kinds restricts the random faults (default: faultKinds).
	kinds []string

	rate         int // publishes per second, in total
	publishers   int
	topics       int
	raw, sdk     int // subscribers
	topicsPerSub int
	// settle is the quiet time after each heal; converge bounds the wait
	// for the subscribers at the end.
	settle   time.Duration
	converge time.Duration
}

func (c *runConfig) defaults() {
	if c.nodes == 0 {
		c.nodes = 3
	}
	if c.rate == 0 {
		c.rate = 150
	}
	if c.publishers == 0 {
		c.publishers = 3
	}
	if c.topics == 0 {
		c.topics = 10
	}
	if c.raw == 0 && c.sdk == 0 {
		c.raw, c.sdk = 24, 6
	}
	if c.topicsPerSub == 0 {
		c.topicsPerSub = 3
	}
	if c.settle == 0 {
		c.settle = 4 * time.Second
	}
	if c.converge == 0 {
		c.converge = 60 * time.Second
	}
}

// nemesisRun is one run: its processes, its workload and its history.
type nemesisRun struct {
	t        *testing.T
	wroteOut bool // writeOut ran
	cfg      runConfig
	rng      *rand.Rand
	start    time.Time
	dir      string

	nodes  []*node
	redis  *proc
	etcd   *proc
	net    *netFaults
	rec    *recorder
	topics []string
	subs   []subscriber
	faults []Fault
	// problems are the harness's own findings (a node that would not come
	// back, for one); any fails the run.
	problems []string
}

// runNemesis runs the cluster under the workload and the faults, checks
// the history, prints the report, and fails t on any violation.
func runNemesis(t *testing.T, cfg runConfig) *Result {
	requireNemesis(t)
	cfg.defaults()
	if cfg.nodes < 3 || cfg.nodes > 5 {
		t.Fatalf("%d nodes: 3 to 5", cfg.nodes)
	}
	r := &nemesisRun{t: t, cfg: cfg, start: time.Now(), rng: rand.New(rand.NewPCG(cfg.seed, cfg.seed^0x9e3779b97f4a7c15))}
	r.rec = newRecorder(r.start)
	t.Logf("nemesis %s: seed %d, %s history, %s membership, %d nodes", cfg.name, cfg.seed, cfg.mode, cfg.membership, cfg.nodes)
	r.dir = publicTempDir(t, "topicast-nemesis-run-")
	for i := range cfg.topics {
		r.topics = append(r.topics, fmt.Sprintf("nem.%02d", i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r.setup(ctx)
	// A run that ends in t.Fatal (a harness step that could not go on)
	// keeps its logs too: they are what explains it.
	defer func() {
		if t.Failed() && !r.wroteOut {
			r.writeOut(nil, "harness: "+strings.Join(r.problems, "; ")+"\n")
		}
	}()

	// Subscribers first: all subscribed before the first publish.
	subCtx, stopSubs := context.WithCancel(ctx)
	var subsWG sync.WaitGroup
	stoppedSubs := false
	stopSubscribers := func() {
		if stoppedSubs {
			return
		}
		stoppedSubs = true
		stopSubs()
		subsWG.Wait()
		for _, s := range r.subs {
			if ss, ok := s.(*sdkSub); ok && ss.c != nil {
				ss.c.Close()
			}
		}
	}
	defer stopSubscribers()
	r.startSubscribers(subCtx, &subsWG)

	stopPub := make(chan struct{})
	pubDone := make(chan struct{})
	go func() {
		defer close(pubDone)
		r.publishers(ctx, stopPub, cfg.rate, cfg.publishers, cfg.rate*3600)
	}()
	stoppedPub := false
	stopPublishers := func() {
		if !stoppedPub {
			stoppedPub = true
			close(stopPub)
			<-pubDone
		}
	}
	defer stopPublishers()

	time.Sleep(3 * time.Second) // publishes flow before the first fault
	schedule := cfg.schedule
	if len(schedule) == 0 {
		kinds := cfg.kinds
		if len(kinds) == 0 {
			kinds = faultKinds(cfg.mode, cfg.membership)
		}
		for range cfg.cycles {
			schedule = append(schedule, kinds[r.rng.IntN(len(kinds))])
		}
	}
	for i, kind := range schedule {
		r.cycle(ctx, i+1, kind)
		if t.Failed() {
			break
		}
	}

	// The end: publishers stop, everything heals, every subscriber should
	// reach its topics' heads.
	stopPublishers()
	r.healAll(ctx)
	for _, n := range r.nodes {
		if err := n.waitReady(ctx, 60*time.Second); err != nil {
			r.problem("at the end: %v", err)
		}
	}
	heads, perNode := r.converge(ctx)
	stopSubscribers()
	after, _ := r.heads(ctx)
	notes := r.notes(ctx)

	h := r.history(heads)
	h.NodeHeads, h.NodeNotes, h.HeadsAfter = perNode, notes, after
	res := Check(h)
	report := Report(h, res)
	if len(r.problems) > 0 {
		report += "harness: " + strings.Join(r.problems, "; ") + "\n"
	}
	t.Log("\n" + report)
	if res.Failed() || len(r.problems) > 0 || t.Failed() {
		r.writeOut(h, report)
		t.Errorf("nemesis %s (seed %d) found violations; see the report above", cfg.name, cfg.seed)
	} else if os.Getenv(envKeep) != "" {
		r.writeOut(h, report)
	}
	return res
}

func (r *nemesisRun) problem(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.t.Logf("%s: %s", fmtDur(r.rec.since()), msg)
	r.problems = append(r.problems, msg)
}

// setup starts the network rules, Redis or etcd, and the nodes.
func (r *nemesisRun) setup(ctx context.Context) {
	t := r.t
	r.net = &netFaults{n: r.cfg.nodes}
	if err := r.net.setup(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := r.net.teardown(); err != nil {
			t.Error(err)
		}
	})
	extra := []string{}
	if r.cfg.mode == ModeRedis {
		p, err := newRedis(r.dir, r.start)
		if err != nil {
			r.missing(err)
		}
		r.redis = p
		r.startService(p, redisAddr)
		extra = append(extra, "--redis", "redis://"+redisAddr+"/0")
	}
	if r.cfg.membership == "etcd" {
		p, err := newEtcd(r.dir, r.start)
		if err != nil {
			r.missing(err)
		}
		r.etcd = p
		r.startService(p, etcdAddr)
		extra = append(extra, "--etcd", "http://"+etcdAddr)
	}
	var peers []string
	for i := range r.cfg.nodes {
		peers = append(peers, nodeIP(i)+":7000")
	}
	if r.cfg.membership != "etcd" {
		extra = append(extra, "--peers", strings.Join(peers, ","))
	}
	for i := range r.cfg.nodes {
		name := fmt.Sprintf("n%d", i+1)
		dir := filepath.Join(r.dir, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(dir, nodeUID(i), nodeUID(i)); err != nil {
			t.Fatal(err)
		}
		n := &node{idx: i, ip: nodeIP(i), httpAddr: nodeIP(i) + ":8080", clusterAddr: nodeIP(i) + ":7000"}
		n.proc = &proc{name: name, path: binary, uid: nodeUID(i), dir: dir, log: &logBuf{start: r.start},
			args: append([]string{"serve", "--node", name, "--http", n.httpAddr, "--cluster-addr", n.clusterAddr,
				"--wt", "off", "--webrtc", "off", "--log-level", "info", "--history-size", "100000", "--history-ttl", "2h",
				"--drain-timeout", "5s"}, extra...)}
		r.nodes = append(r.nodes, n)
	}
	t.Cleanup(func() {
		for _, n := range r.nodes {
			n.stop()
		}
		for _, p := range []*proc{r.redis, r.etcd} {
			if p != nil {
				p.stop()
			}
		}
	})
	for _, n := range r.nodes {
		if err := n.start(); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range r.nodes {
		if err := n.waitReady(ctx, 60*time.Second); err != nil {
			r.writeOut(nil, "")
			t.Fatal(err)
		}
	}
}

// missing skips or fails the test for a program that is not installed.
func (r *nemesisRun) missing(err error) {
	if os.Getenv("CI") != "" {
		r.t.Fatal(err)
	}
	r.t.Skip(err)
}

func (r *nemesisRun) startService(p *proc, addr string) {
	if err := p.start(); err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(p.stop)
	if err := waitTCP(addr, 30*time.Second); err != nil {
		r.t.Fatalf("%s: %v\n%s", p.name, err, p.log.bytes())
	}
}

// startSubscribers starts raw and SDK subscribers, homes spread over the
// nodes, and waits until each has its subscriptions confirmed.
func (r *nemesisRun) startSubscribers(ctx context.Context, wg *sync.WaitGroup) {
	t := r.t
	total := r.cfg.raw + r.cfg.sdk
	var raws []*rawSub
	var sdks []*sdkSub
	for i := range total {
		m := Subscriber{Index: i, Home: i % r.cfg.nodes}
		for k := range r.cfg.topicsPerSub {
			m.Topics = append(m.Topics, r.topics[(i*7+k*3)%len(r.topics)])
		}
		// SDK clients are every fifth, so they spread over homes too.
		if len(sdks) < r.cfg.sdk && (i%5 == 4 || total-i <= r.cfg.sdk-len(sdks)) {
			m.SDK, m.Name = true, fmt.Sprintf("sdk-%02d", i)
			s := &sdkSub{r: r, m: m, id: i, pos: make(map[string]Pos), node: -1}
			sdks = append(sdks, s)
			r.subs = append(r.subs, s)
			continue
		}
		m.Name = fmt.Sprintf("raw-%02d", i)
		s := &rawSub{r: r, m: m, id: i, patient: len(raws)%2 == 1, subscribed: make(chan struct{}), nudge: make(chan struct{}, 1),
			pos: make(map[string]Pos)}
		raws = append(raws, s)
		r.subs = append(r.subs, s)
	}
	for _, s := range raws {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(ctx)
		}()
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for _, s := range sdks {
		if err := s.dial(dctx); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range raws {
		select {
		case <-s.subscribed:
		case <-dctx.Done():
			t.Fatalf("%s: subscriptions not confirmed in 30 s", s.m.Name)
		}
	}
}

// detection is about how long membership takes to notice a dead node.
func (r *nemesisRun) detection() time.Duration {
	if r.cfg.membership == "etcd" {
		return 3 * time.Second
	}
	return 1500 * time.Millisecond
}

// between draws a duration in [lo, hi).
func (r *nemesisRun) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.rng.Int64N(int64(hi-lo)))
}

// cycle injects one fault, holds it, heals it and lets the cluster settle.
func (r *nemesisRun) cycle(ctx context.Context, idx int, kind string) {
	n := len(r.nodes)
	det := r.detection()
	f := Fault{Index: idx, Kind: kind}
	var inject, heal func()
	var hold time.Duration
	netErr := func(err error) {
		if err != nil {
			r.t.Fatal(err)
		}
	}
	cut := func(desc string, affected []int, pairs [][2]int) {
		f.Desc, f.Nodes = desc, affected
		hold = det + r.between(3*time.Second, 5*time.Second)
		inject = func() { netErr(r.net.cut(pairs)) }
		heal = func() { netErr(r.net.heal()) }
	}
	switch kind {
	case faultKill, faultTerm, faultPause:
		v := r.rng.IntN(n)
		nd := r.nodes[v]
		f.Nodes = []int{v}
		switch kind {
		case faultKill:
			// Half the time a supervisor restarts it at once, before the
			// others notice the death; else past failure detection.
			if r.rng.IntN(2) == 0 {
				hold = r.between(0, time.Second)
			} else {
				hold = det + r.between(1500*time.Millisecond, 3*time.Second)
			}
			f.Desc = fmt.Sprintf("kill -9 %s, restart after %.1fs", nd.name, hold.Seconds())
			inject = func() {
				nd.setState(nodeDown)
				nd.kill()
			}
		case faultTerm:
			f.Desc = "SIGTERM " + nd.name
			hold = r.between(time.Second, 2*time.Second)
			inject = func() {
				nd.setState(nodeDown)
				if err := nd.term(15 * time.Second); err != nil {
					r.problem("%v", err)
				}
			}
		case faultPause:
			hold = r.between(5*time.Second, 9*time.Second)
			f.Desc = fmt.Sprintf("SIGSTOP %s %.1fs", nd.name, hold.Seconds())
			inject = func() {
				nd.setState(nodePaused)
				if err := nd.signal(syscall.SIGSTOP); err != nil {
					r.problem("pause: %v", err)
				}
			}
			heal = func() {
				if err := nd.signal(syscall.SIGCONT); err != nil {
					r.problem("resume: %v", err)
				}
				nd.setState(nodeUp)
				r.sendHome(v)
			}
		}
		if heal == nil {
			heal = func() { r.restart(ctx, nd) }
		}
	case faultIsolate:
		v := r.rng.IntN(n)
		cut("isolate "+r.nodes[v].name, []int{v}, isolatePairs(n, v))
	case faultSplit:
		perm := r.rng.Perm(n)
		minority, majority := perm[:n/2], perm[n/2:]
		slices.Sort(minority)
		slices.Sort(majority)
		cut(fmt.Sprintf("split %s | %s", r.names(minority), r.names(majority)), minority, splitPairs(minority, majority))
	case faultBridge:
		perm := r.rng.Perm(n)
		bridge, rest := perm[0], perm[1:]
		a, b := rest[:len(rest)/2], rest[len(rest)/2:]
		slices.Sort(a)
		slices.Sort(b)
		cut(fmt.Sprintf("bridge %s | %s | %s", r.names(a), r.nodes[bridge].name, r.names(b)), append(slices.Clone(a), b...), splitPairs(a, b))
	case faultNone:
		f.Desc = "nothing"
		hold = r.between(3*time.Second, 5*time.Second)
		inject, heal = func() {}, func() {}
	case faultLoss:
		pct := 10 + r.rng.IntN(21)
		f.Desc, f.Nodes = fmt.Sprintf("loss %d%% between nodes", pct), r.all()
		hold = r.between(5*time.Second, 8*time.Second)
		inject = func() { netErr(r.net.loss(pct)) }
		heal = func() { netErr(r.net.heal()) }
	case faultRedisKill, faultRedisPause, faultEtcdKill, faultEtcdPause:
		p, addr := r.redis, redisAddr
		if kind == faultEtcdKill || kind == faultEtcdPause {
			p, addr = r.etcd, etcdAddr
		}
		if p == nil {
			r.t.Fatalf("fault %s without %s", kind, strings.Split(kind, "-")[0])
		}
		f.Nodes = r.all()
		if kind == faultRedisKill || kind == faultEtcdKill {
			hold = r.between(2*time.Second, 4*time.Second)
			if kind == faultEtcdKill {
				hold += det
			}
			f.Desc = "kill -9 " + p.name
			inject = p.kill
			heal = func() {
				if err := p.start(); err != nil {
					r.problem("%v", err)
				}
				if err := waitTCP(addr, 30*time.Second); err != nil {
					r.problem("%s: %v", p.name, err)
				}
			}
		} else {
			hold = r.between(3*time.Second, 6*time.Second)
			if kind == faultEtcdPause {
				hold += det
			}
			f.Desc = fmt.Sprintf("SIGSTOP %s %.1fs", p.name, hold.Seconds())
			inject = func() { netErr(p.signal(syscall.SIGSTOP)) }
			heal = func() { netErr(p.signal(syscall.SIGCONT)) }
		}
	default:
		r.t.Fatalf("unknown fault %q", kind)
	}
	r.reviveExited(ctx)
	f.Start = r.rec.since()
	r.t.Logf("%s: fault #%d %s (hold %.1fs)", fmtDur(f.Start), idx, f.Desc, hold.Seconds())
	r.mark("fault #%d %s", idx, f.Desc)
	inject()
	sleepCtx(ctx, hold)
	f.End = r.rec.since()
	r.mark("heal #%d", idx)
	heal()
	r.faults = append(r.faults, f)
	sleepCtx(ctx, r.cfg.settle)
}

// reviveExited finds nodes that ended by themselves (no fault of the
// nemesis stopped them): each is a finding of the run, reported with the end
// of its log, and is started again, as a supervisor would, so that the run
// goes on.
func (r *nemesisRun) reviveExited(ctx context.Context) {
	for _, nd := range r.nodes {
		if nd.getState() == nodeDown || nd.running() {
			continue
		}
		r.problem("%s exited by itself; the end of its log:\n%s", nd.name, nd.log.tail(30))
		nd.wait(time.Second) // it has exited: this only forgets it
		r.restart(ctx, nd)
	}
}

// restart starts a node that was stopped, and waits for it.
func (r *nemesisRun) restart(ctx context.Context, nd *node) {
	if err := nd.start(); err != nil {
		r.problem("%v", err)
		return
	}
	nd.setState(nodeUp)
	if err := nd.waitReady(ctx, 30*time.Second); err != nil {
		r.problem("restart: %v", err)
		return
	}
	r.sendHome(nd.idx)
}

// sendHome sends the raw subscribers of node i back to it at once, as a
// load balancer would once the node passes its health check.
func (r *nemesisRun) sendHome(i int) {
	for _, s := range r.subs {
		if rs, ok := s.(*rawSub); ok && rs.m.Home == i {
			rs.goHome()
		}
	}
}

// mark writes a line into every process's log.
func (r *nemesisRun) mark(format string, args ...any) {
	for _, n := range r.nodes {
		n.log.mark(format, args...)
	}
}

func (r *nemesisRun) all() []int {
	out := make([]int, len(r.nodes))
	for i := range out {
		out[i] = i
	}
	return out
}

func (r *nemesisRun) names(idx []int) string {
	var s []string
	for _, i := range idx {
		s = append(s, r.nodes[i].name)
	}
	return strings.Join(s, ",")
}

// healAll removes every fault there may still be.
func (r *nemesisRun) healAll(ctx context.Context) {
	if err := r.net.heal(); err != nil {
		r.problem("%v", err)
	}
	for _, p := range []*proc{r.redis, r.etcd} {
		if p == nil {
			continue
		}
		if !p.running() {
			if err := p.start(); err != nil {
				r.problem("%v", err)
			}
		} else if err := p.signal(syscall.SIGCONT); err != nil {
			r.problem("%v", err)
		}
	}
	for _, n := range r.nodes {
		if !n.running() {
			r.restart(ctx, n)
			continue
		}
		if n.getState() == nodePaused {
			if err := n.signal(syscall.SIGCONT); err != nil {
				r.problem("%v", err)
			}
		}
		n.setState(nodeUp)
	}
}

// heads asks every node for each topic's epoch and head; it returns the
// answers most nodes gave, and each node's.
func (r *nemesisRun) heads(ctx context.Context) (map[string]Pos, map[string]map[string]Pos) {
	perNode := make(map[string]map[string]Pos)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, n := range r.nodes {
		hs := make(map[string]Pos)
		perNode[n.name] = hs
		for _, topic := range r.topics {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if p, err := n.head(ctx, topic); err == nil {
					mu.Lock()
					hs[topic] = p
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	return MajorityHeads(perNode), perNode
}

// notes describes what each node says of itself at the end: readiness,
// the members it counts (/metrics) and the last membership its log shows.
func (r *nemesisRun) notes(ctx context.Context) map[string]string {
	out := make(map[string]string)
	byAddr := make(map[string]string)
	for _, n := range r.nodes {
		byAddr[n.clusterAddr] = n.name
	}
	for _, n := range r.nodes {
		var parts []string
		if !n.ready(ctx) {
			parts = append(parts, "NOT READY")
		}
		if m, err := n.metric(ctx, "topicast_cluster_members"); err == nil {
			parts = append(parts, "counts "+m+" members")
		}
		log := n.log.bytes()
		const key = `msg="cluster membership changed"`
		if i := bytes.LastIndex(log, []byte(key)); i >= 0 {
			line := log[i:]
			if j := bytes.IndexByte(line, '\n'); j >= 0 {
				line = line[:j]
			}
			if _, rest, ok := bytes.Cut(line, []byte(` members=`)); ok {
				rest = bytes.TrimPrefix(bytes.TrimPrefix(rest, []byte(`"`)), []byte("["))
				members, _, _ := bytes.Cut(rest, []byte("]"))
				var names []string
				for _, a := range strings.Fields(string(members)) {
					names = append(names, cmp.Or(byAddr[a], a))
				}
				parts = append(parts, "last logged membership ["+strings.Join(names, " ")+"]")
			}
		}
		out[n.name] = strings.Join(parts, ", ")
	}
	return out
}

// metric reads one unlabelled value from /metrics.
func (n *node) metric(ctx context.Context, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+n.httpAddr+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("%s: no %s", n.name, name)
}

func (n *node) head(ctx context.Context, topic string) (Pos, error) {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet,
		"http://"+n.httpAddr+"/v1/history?since=0&limit=1&topic="+url.QueryEscape(topic), nil)
	if err != nil {
		return Pos{}, err
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return Pos{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Pos{}, fmt.Errorf("history %s on %s: %d", topic, n.name, resp.StatusCode)
	}
	var h struct {
		Epoch string `json:"epoch"`
		Head  uint64 `json:"head"`
	}
	err = json.NewDecoder(resp.Body).Decode(&h)
	return Pos{h.Epoch, h.Head}, err
}

// noProgress ends the wait for convergence when no subscriber has seen
// anything for that long.
const noProgress = 8 * time.Second

// converge waits until every subscriber is at its topics' heads, twice
// in a row with the same heads: at most cfg.converge, and no more than
// noProgress without any progress. It returns the last heads it compared
// the subscribers with (those most nodes gave), and each node's.
func (r *nemesisRun) converge(ctx context.Context) (map[string]Pos, map[string]map[string]Pos) {
	deadline := time.Now().Add(r.cfg.converge)
	lastCount, lastProgress := -1, time.Now()
	var last map[string]Pos
	for {
		heads, perNode := r.heads(ctx)
		behind := 0
		for _, s := range r.subs {
			for _, topic := range s.meta().Topics {
				h := heads[topic]
				if p, ok := s.position(topic); !ok || p.Epoch != h.Epoch || p.Seq < h.Seq {
					behind++
				}
			}
		}
		if behind == 0 && len(heads) == len(r.topics) {
			if maps.Equal(heads, last) {
				r.t.Logf("%s: every subscriber is at the heads", fmtDur(r.rec.since()))
				return heads, perNode
			}
			last = heads
			continue
		}
		last = nil
		if c := r.rec.count(); c != lastCount {
			lastCount, lastProgress = c, time.Now()
		}
		if time.Now().After(deadline) || time.Since(lastProgress) > noProgress || ctx.Err() != nil {
			r.t.Logf("%s: %d (subscriber, topic) pairs still behind the heads; %d of %d heads known", fmtDur(r.rec.since()),
				behind, len(heads), len(r.topics))
			return heads, perNode
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// history assembles what was recorded.
func (r *nemesisRun) history(heads map[string]Pos) *History {
	h := &History{
		Name: r.cfg.name, Mode: r.cfg.mode, Membership: r.cfg.membership, Seed: r.cfg.seed,
		Topics: r.topics, Started: r.start, Duration: r.rec.since(), Heads: heads, Faults: r.faults,
	}
	for _, n := range r.nodes {
		h.Nodes = append(h.Nodes, n.name)
	}
	for _, s := range r.subs {
		h.Subscribers = append(h.Subscribers, s.meta())
	}
	r.rec.mu.Lock()
	h.Events, h.Publishes = r.rec.events, r.rec.pubs
	r.rec.mu.Unlock()
	return h
}

// writeOut saves the history, the report and every process's log in a
// directory that outlives the test, and logs its path.
func (r *nemesisRun) writeOut(h *History, report string) {
	r.wroteOut = true
	dir := os.Getenv(envOut)
	if dir == "" {
		dir = os.TempDir()
	}
	dir = filepath.Join(dir, fmt.Sprintf("topicast-nemesis-%s-%s-seed%d", r.cfg.name, r.start.Format("20060102-150405"), r.cfg.seed))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.t.Error(err)
		return
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			r.t.Error(err)
		}
	}
	if h != nil {
		f, err := os.Create(filepath.Join(dir, "history.jsonl"))
		if err == nil {
			err = h.WriteJSONL(f)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			r.t.Error(err)
		}
	}
	if report != "" {
		write("report.txt", []byte(report))
	}
	for _, n := range r.nodes {
		write(n.name+".log", n.log.bytes())
	}
	for _, p := range []*proc{r.redis, r.etcd} {
		if p != nil {
			write(p.name+".log", p.log.bytes())
		}
	}
	r.t.Logf("history, report and logs in %s", dir)
}

// TestNemesisShort runs three short schedules that together use every
// kind of fault: static membership with Redis, static membership with
// history in memory, etcd membership with Redis. Three to four minutes.
func TestNemesisShort(t *testing.T) {
	testutil.SkipIfShort(t)
	requireNemesis(t)
	runs := []runConfig{
		{name: "A", mode: ModeRedis, membership: "static", seed: 1, schedule: []string{
			faultKill, faultRedisKill, faultIsolate, faultPause, faultSplit, faultKill, faultTerm, faultBridge, faultRedisPause, faultLoss}},
		{name: "B", mode: ModeMemory, membership: "static", seed: 2, schedule: []string{faultKill, faultPause, faultIsolate}},
		{name: "C", mode: ModeRedis, membership: "etcd", seed: 3, schedule: []string{faultEtcdKill, faultEtcdPause, faultKill}},
	}
	for _, cfg := range runs {
		cfg.settle, cfg.converge = 3*time.Second, 20*time.Second
		t.Run(cfg.name, func(t *testing.T) { runNemesis(t, cfg) })
	}
}

// TestNemesisLong runs -nemesis.cycles random faults (skipped without the
// flag); see scripts/nemesis.sh.
func TestNemesisLong(t *testing.T) {
	if *flagCycles <= 0 {
		t.Skip("run with -nemesis.cycles N (scripts/nemesis.sh)")
	}
	requireNemesis(t)
	seed := *flagSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano() % 1_000_000)
	}
	if *flagMode != ModeRedis && *flagMode != ModeMemory {
		t.Fatalf("-nemesis.mode %q: redis or memory", *flagMode)
	}
	if *flagMembership != "static" && *flagMembership != "etcd" {
		t.Fatalf("-nemesis.membership %q: static or etcd", *flagMembership)
	}
	var kinds []string
	if *flagFaults != "" {
		valid := append(faultKinds(*flagMode, *flagMembership), faultNone)
		for _, k := range strings.Split(*flagFaults, ",") {
			if !slices.Contains(valid, k) {
				t.Fatalf("-nemesis.faults: %q is not one of %s", k, strings.Join(valid, ","))
			}
			kinds = append(kinds, k)
		}
	}
	runNemesis(t, runConfig{name: "long", mode: *flagMode, membership: *flagMembership, nodes: *flagNodes, seed: seed,
		cycles: *flagCycles, rate: *flagRate, kinds: kinds})
}

// TestRecheck judges a saved history again (-nemesis.recheck FILE).
func TestRecheck(t *testing.T) {
	if *flagRecheck == "" {
		t.Skip("run with -nemesis.recheck history.jsonl")
	}
	f, err := os.Open(*flagRecheck)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, err := ReadJSONL(f)
	if err != nil {
		t.Fatal(err)
	}
	res := Check(h)
	t.Log("\n" + Report(h, res))
	if res.Failed() {
		t.Error("violations")
	}
}
