package cluster

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/cespare/xxhash/v2"

	"github.com/topicast/topicast/actors"
	"github.com/topicast/topicast/actors/actorpb"
)

// ActivatorName is the name of each member's activator actor, which spawns
// the grains the member owns when another member (or itself) asks.
const ActivatorName = "topicast-activator"

// errMemberLeft is returned when the member a call went to left the
// cluster before answering.
var errMemberLeft = errors.New("topicast: the member left the cluster")

// member is one member that hosts grains, with its hash precomputed.
type member struct {
	addr string
	h    uint64
}

// placement answers "which member owns this identity" by rendezvous
// (highest random weight) hashing: every member scores
// mix(xxhash(identity) ^ xxhash(address)) and the highest wins. Adding or
// removing a member moves only the identities it wins or held, and the
// shares are even (within a few percent over thousands of identities). The
// zero value has no member. A placement is immutable.
type placement struct {
	members []member // sorted by address
}

func newPlacement(addrs []string) placement {
	ms := make([]member, 0, len(addrs))
	for _, a := range addrs {
		ms = append(ms, member{addr: a, h: xxhash.Sum64String(a)})
	}
	slices.SortFunc(ms, func(a, b member) int { return strings.Compare(a.addr, b.addr) })
	ms = slices.CompactFunc(ms, func(a, b member) bool { return a.addr == b.addr })
	return placement{members: ms}
}

// mix is splitmix64's finalizer: a bijection that spreads every input bit.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// owner returns the address of the member that owns identity, or "".
func (p placement) owner(identity string) string {
	if len(p.members) == 0 {
		return ""
	}
	hid := xxhash.Sum64String(identity)
	best, bestScore := 0, uint64(0)
	for i, m := range p.members {
		if s := mix(hid ^ m.h); i == 0 || s > bestScore {
			best, bestScore = i, s
		}
	}
	return p.members[best].addr
}

func (p placement) has(addr string) bool {
	_, ok := slices.BinarySearchFunc(p.members, addr, func(m member, a string) int { return strings.Compare(m.addr, a) })
	return ok
}

type cacheEntry struct {
	identity string
	pid      *actor.PID
}

// lookup is topicast's protoactor IdentityLookup: rendezvous placement
// over the members that host the kind, a PID cache, and one activator
// actor per member that spawns the grains the member owns. It is
// goroutine-safe.
//
// Compared with protoactor's disthash it hashes evenly (xxhash rather than
// fnv32 of addresses that differ in one byte), guards its member set with a
// lock (disthash races Get against topology changes), honours the cluster's
// request timeout (disthash waits 5 s), caches PIDs, refuses to activate a
// grain its member does not own (so two members never both keep one while
// their views of the membership differ for a moment), and stops the
// activations its member no longer owns after a change.
type lookup struct {
	kind     string
	props    func(identity string) *actor.Props
	timeout  time.Duration
	logger   *slog.Logger
	onChange func() // called after each topology change, outside the lock
	memberID string // this member's id as the membership lists it; set before Setup

	// Set by Setup.
	cluster   *protocluster.Cluster
	self      string
	activator *actor.PID
	subs      []*eventstream.Subscription

	// quorate is what this member answers in MembershipResponse; the node's
	// guard sets it.
	quorate atomic.Bool

	mu sync.RWMutex
	// Guarded by mu.
	place    placement
	ids      []string  // the ids of the members that host the kind, sorted
	joinedAt time.Time // when the member set first included self
	topoHash uint64
	joined   chan struct{} // closed once the member set includes self
	changed  chan struct{} // closed and replaced at every topology change
	cache    map[string]cacheEntry
	shutdown bool
}

var _ protocluster.IdentityLookup = (*lookup)(nil)

// newLookup returns a lookup for grains of kind, spawned with props.
func newLookup(kind string, props func(identity string) *actor.Props, timeout time.Duration, logger *slog.Logger) *lookup {
	return &lookup{
		kind:    kind,
		props:   props,
		timeout: timeout,
		logger:  logger,
		joined:  make(chan struct{}),
		changed: make(chan struct{}),
		cache:   make(map[string]cacheEntry),
	}
}

// Setup starts the activator and follows the membership. protoactor calls
// it from Cluster.StartMember, before the provider starts.
func (l *lookup) Setup(c *protocluster.Cluster, _ []string, _ bool) {
	l.cluster = c
	l.self = c.ActorSystem.Address()
	props := actor.PropsFromProducer(func() actor.Actor {
		return &activator{l: l, acts: make(map[string]*actor.PID)}
	})
	pid, err := c.ActorSystem.Root.SpawnNamed(props, ActivatorName)
	if err != nil {
		panic(err) // only when the name is taken: Setup ran twice
	}
	l.activator = pid
	es := c.ActorSystem.EventStream
	l.subs = append(l.subs,
		es.Subscribe(func(ev any) {
			if t, ok := ev.(*protocluster.ClusterTopology); ok {
				l.onTopology(t)
			}
		}),
		es.Subscribe(func(ev any) {
			if dl, ok := ev.(*actor.DeadLetterEvent); ok {
				l.onDeadLetter(dl)
			}
		}),
	)
}

// Shutdown stops following the membership. protoactor calls it more than
// once.
func (l *lookup) Shutdown() {
	l.mu.Lock()
	if l.shutdown {
		l.mu.Unlock()
		return
	}
	l.shutdown = true
	l.mu.Unlock()
	if l.cluster == nil {
		return
	}
	for _, s := range l.subs {
		l.cluster.ActorSystem.EventStream.Unsubscribe(s)
	}
	l.cluster.ActorSystem.Root.Stop(l.activator)
}

func cacheKey(identity, kind string) string { return kind + "/" + identity }

// Get returns the PID of the grain, activating it on its owner if needed,
// or nil when that fails within the cluster's request timeout.
func (l *lookup) Get(ci *protocluster.ClusterIdentity) *actor.PID {
	pid, _ := l.get(ci.Identity, ci.Kind, l.timeout)
	return pid
}

// RemovePid forgets pid if the cache holds it for ci (it stopped or does
// not answer).
func (l *lookup) RemovePid(ci *protocluster.ClusterIdentity, pid *actor.PID) {
	l.forget(ci.Identity, ci.Kind, pid)
}

func (l *lookup) forget(identity, kind string, pid *actor.PID) {
	key := cacheKey(identity, kind)
	l.mu.Lock()
	defer l.mu.Unlock()
	if e, ok := l.cache[key]; ok && (pid == nil || e.pid.Equal(pid)) {
		delete(l.cache, key)
	}
}

// cached returns the cached PID of the grain.
func (l *lookup) cached(identity, kind string) (*actor.PID, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	e, ok := l.cache[cacheKey(identity, kind)]
	return e.pid, ok
}

// owner returns the address of the member that owns identity now.
func (l *lookup) owner(identity string) string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.place.owner(identity)
}

// alive reports whether addr is a member.
func (l *lookup) alive(addr string) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.place.has(addr)
}

// memberAddrs returns the members' addresses.
func (l *lookup) memberAddrs() []string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	addrs := make([]string, len(l.place.members))
	for i, m := range l.place.members {
		addrs[i] = m.addr
	}
	return addrs
}

// view is how this member sees the cluster, for the node's guard.
type view struct {
	addrs    []string // the members' addresses, sorted
	ids      []string // the members' ids, sorted
	joinedAt time.Time
}

func (v view) hasID(id string) bool {
	_, ok := slices.BinarySearch(v.ids, id)
	return ok
}

func (v view) hasAddr(addr string) bool {
	_, ok := slices.BinarySearch(v.addrs, addr)
	return ok
}

// view returns the members this member sees.
func (l *lookup) view() view {
	l.mu.RLock()
	defer l.mu.RUnlock()
	v := view{ids: l.ids, joinedAt: l.joinedAt, addrs: make([]string, len(l.place.members))}
	for i, m := range l.place.members {
		v.addrs[i] = m.addr
	}
	return v
}

// settleTime is how long a member must have been in the cluster before its
// view of the membership counts for the others' guards.
const settleTime = 3 * time.Second

// membership answers a MembershipRequest.
func (l *lookup) membership() *actorpb.MembershipResponse {
	v := l.view()
	return &actorpb.MembershipResponse{
		MemberId: l.memberID,
		Members:  v.ids,
		Settled:  !v.joinedAt.IsZero() && time.Since(v.joinedAt) >= settleTime,
		Quorate:  l.quorate.Load(),
	}
}

// Changed returns a channel closed at the next topology change.
func (l *lookup) Changed() <-chan struct{} {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.changed
}

// Joined returns a channel closed once the membership includes this member.
func (l *lookup) Joined() <-chan struct{} { return l.joined }

// get is Get with a timeout: it asks the owner's activator, again when the
// owner refuses (its view of the membership lags) or leaves, until timeout.
func (l *lookup) get(identity, kind string, timeout time.Duration) (*actor.PID, error) {
	deadline := time.Now().Add(timeout)
	key := cacheKey(identity, kind)
	for {
		l.mu.RLock()
		e, hit := l.cache[key]
		owner := l.place.owner(identity)
		hash, changed, down := l.topoHash, l.changed, l.shutdown
		l.mu.RUnlock()
		if hit {
			return e.pid, nil
		}
		if down || l.cluster == nil {
			return nil, actors.ErrNoTopicActor
		}
		remaining := time.Until(deadline)
		if remaining <= 0 {
			return nil, actors.ErrNoTopicActor
		}
		if owner == "" {
			waitChange(changed, remaining) // no member yet
			continue
		}
		req := &actorpb.ActivationRequest{Identity: identity, Kind: kind, TopologyHash: hash}
		f := l.cluster.ActorSystem.Root.RequestFuture(actor.NewPID(owner, ActivatorName), req, remaining)
		res, err := awaitFuture(f, changed, func() bool { return l.alive(owner) })
		if errors.Is(err, errMemberLeft) {
			continue
		}
		if err != nil {
			if errors.Is(err, actor.ErrDeadLetter) {
				// The owner's activator is not there (yet, or any more).
				waitChange(changed, min(remaining, 50*time.Millisecond))
				continue
			}
			l.logger.LogAttrs(context.Background(), slog.LevelDebug, "activation request failed",
				slog.String("topic", identity), slog.String("owner", owner), slog.Any("err", err))
			return nil, actors.ErrNoTopicActor
		}
		r, ok := res.(*actorpb.ActivationResponse)
		if !ok || r.Refused || r.Pid == nil {
			// The owner's view of the membership differs from ours: wait for
			// ours to change, or a moment for its to.
			waitChange(changed, min(time.Until(deadline), 20*time.Millisecond))
			continue
		}
		l.mu.Lock()
		if l.topoHash == hash && !l.shutdown {
			l.cache[key] = cacheEntry{identity: identity, pid: r.Pid}
		}
		l.mu.Unlock()
		return r.Pid, nil
	}
}

// waitChange waits until changed is closed or d has passed.
func waitChange(changed <-chan struct{}, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-changed:
	case <-t.C:
	}
}

// awaitFuture waits for f, and gives up early with errMemberLeft when the
// topology changes and stillThere says the callee's member is gone.
func awaitFuture(f *actor.Future, changed <-chan struct{}, stillThere func() bool) (any, error) {
	type result struct {
		res any
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := f.Result() // ends by the future's timeout at the latest
		done <- result{res, err}
	}()
	for {
		select {
		case r := <-done:
			return r.res, r.err
		case <-changed:
			if !stillThere() {
				return nil, errMemberLeft
			}
			changed = nil // one check per call is enough; the future's timeout bounds the rest
		}
	}
}

func (l *lookup) onTopology(t *protocluster.ClusterTopology) {
	var addrs, ids []string
	for _, m := range t.Members {
		if slices.Contains(m.Kinds, l.kind) {
			addrs = append(addrs, m.Address())
			ids = append(ids, m.Id)
		}
	}
	slices.Sort(ids)
	p := newPlacement(addrs)
	l.mu.Lock()
	if l.shutdown {
		l.mu.Unlock()
		return
	}
	l.place, l.ids, l.topoHash = p, ids, t.TopologyHash
	for key, e := range l.cache {
		if p.owner(e.identity) != e.pid.Address {
			delete(l.cache, key)
		}
	}
	close(l.changed)
	l.changed = make(chan struct{})
	if p.has(l.self) {
		select {
		case <-l.joined:
		default:
			l.joinedAt = time.Now()
			close(l.joined)
		}
	}
	l.mu.Unlock()

	left := make([]string, 0, len(t.Left))
	for _, m := range t.Left {
		left = append(left, m.Address())
	}
	joined := make([]string, 0, len(t.Joined))
	for _, m := range t.Joined {
		joined = append(joined, m.Address())
	}
	l.logger.LogAttrs(context.Background(), slog.LevelInfo, "cluster membership changed",
		slog.Any("members", addrs), slog.Any("joined", joined), slog.Any("left", left))
	l.cluster.ActorSystem.Root.Send(l.activator, t)
	if l.onChange != nil {
		l.onChange()
	}
}

// onDeadLetter forgets the cached PID of a local grain that stopped.
func (l *lookup) onDeadLetter(dl *actor.DeadLetterEvent) {
	var topic string
	switch m := dl.Message.(type) {
	case *actorpb.PublishRequest:
		topic = m.Topic
	case *actorpb.JoinRequest:
		topic = m.Topic
	case *actorpb.HistoryRequest:
		topic = m.Topic
	default:
		return
	}
	l.forget(topic, l.kind, dl.PID)
}

// activator spawns the grains its member owns, answers where they are, and
// stops those the member no longer owns after a topology change.
type activator struct {
	l    *lookup
	acts map[string]*actor.PID // by identity
}

func (a *activator) Receive(c actor.Context) {
	switch msg := c.Message().(type) {
	case *actorpb.ActivationRequest:
		a.onActivationRequest(c, msg)
	case *actorpb.ActivationStopped:
		a.l.forget(msg.Identity, msg.Kind, msg.Pid)
	case *actorpb.MembershipRequest:
		c.Respond(a.l.membership())
	case *protocluster.ClusterTopology:
		a.onTopology(c)
	case *actor.Terminated:
		a.onTerminated(c, msg.Who)
	}
}

func (a *activator) onActivationRequest(c actor.Context, req *actorpb.ActivationRequest) {
	if req.Kind != a.l.kind {
		c.Respond(&actorpb.ActivationResponse{Refused: true})
		return
	}
	if owner := a.l.owner(req.Identity); owner != a.l.self {
		c.Respond(&actorpb.ActivationResponse{Refused: true, Owner: owner})
		return
	}
	pid := a.acts[req.Identity]
	if pid == nil {
		pid = c.SpawnPrefix(a.l.props(req.Identity), req.Identity)
		a.acts[req.Identity] = pid
	}
	c.Respond(&actorpb.ActivationResponse{Pid: pid})
}

// onTopology stops the activations this member no longer owns. They get a
// poison pill, so what they have queued is still answered (or, when a newer
// activation fenced them out, answered "retry").
func (a *activator) onTopology(c actor.Context) {
	for id, pid := range a.acts {
		if a.l.owner(id) != a.l.self {
			delete(a.acts, id)
			c.Poison(pid)
		}
	}
}

// onTerminated forgets a stopped activation and tells the other members, so
// their caches drop it.
func (a *activator) onTerminated(c actor.Context, who *actor.PID) {
	var identity string
	for id, pid := range a.acts {
		if pid.Equal(who) {
			identity = id
			delete(a.acts, id)
			break
		}
	}
	if identity == "" {
		identity = activationIdentity(who.Id)
	}
	if identity == "" {
		return
	}
	a.l.forget(identity, a.l.kind, who)
	msg := &actorpb.ActivationStopped{Identity: identity, Kind: a.l.kind, Pid: who}
	for _, addr := range a.l.memberAddrs() {
		if addr != a.l.self {
			c.Send(actor.NewPID(addr, ActivatorName), msg)
		}
	}
}

// activationIdentity recovers the identity from a child's id, which
// SpawnPrefix makes "<activator>/<identity>$<n>".
func activationIdentity(id string) string {
	rest, ok := strings.CutPrefix(id, ActivatorName+"/")
	if !ok {
		return ""
	}
	if i := strings.LastIndexByte(rest, '$'); i >= 0 {
		return rest[:i]
	}
	return rest
}

// TopicOwner returns which of the members (cluster addresses) owns topic
// under topicast's placement, as every node computes it. For tools and
// tests.
func TopicOwner(members []string, topic string) string {
	return newPlacement(members).owner(topic)
}
