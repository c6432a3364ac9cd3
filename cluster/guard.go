package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/topicast/topicast/actors/actorpb"
	"github.com/topicast/topicast/sdk/wire"
	"github.com/topicast/topicast/transport"
)

// Defaults of the node's guard.
const (
	// DefaultGuardInterval is how often a node asks its peers whether they
	// still count it as a member.
	DefaultGuardInterval = time.Second
	// DefaultStallThreshold is how long the node's own clock may jump
	// between two ticks of its guard before it assumes that it was paused
	// (SIGSTOP, a frozen VM) long enough for the others to drop it, and
	// checks at once. It is below the static provider's failure detection
	// (a peer that misses one 2 s health check is dropped).
	DefaultStallThreshold = time.Second
)

// guardTick is the guard's clock resolution: a stall is measured between
// ticks, and rounds happen every few ticks.
const guardTick = 250 * time.Millisecond

// askTimeout bounds one MembershipRequest to a peer.
const askTimeout = 800 * time.Millisecond

// Disconnects of the guard: each closes clients with 1001 so that they
// reconnect to another node (or to this one once it is back) and recover.
var (
	disconnectCutOff = transport.Disconnect{Code: wire.CloseGoingAway,
		Reason: "node cut off from most of the cluster"}
	disconnectRejoin = transport.Disconnect{Code: wire.CloseGoingAway,
		Reason: "node rejoining the cluster"}
)

// The guard keeps a node from serving while the cluster does not count it.
//
// protoactor's member list drops a member that failed a health check (or
// whose etcd lease expired) and blocks its id for good, and it never tells
// the member. A node paused past failure detection, or cut off by a
// partition, so wakes up believing it still owns its topics, while the
// others have placed them elsewhere and will never let it back in. The
// guard finds that out and acts:
//
//   - Quorum (static peers only): a node that sees no majority of the
//     configured peers is not ready: /readyz says 503, publishes, history
//     and new clients are refused with "unavailable", and its clients are
//     closed with 1001 so that they move to the majority and recover there.
//   - Eviction: every DefaultGuardInterval, and at once after a stall of its
//     own clock, the node asks every peer (its activator, over protoactor's
//     remote) which members it counts. A settled peer that no longer counts
//     this node's id, twice in a row (once after a stall), has dropped it
//     for good when this node counts that peer (one-sided); when neither
//     counts the other (a healed partition), the weaker side yields: fewer
//     members, no quorum, or the higher id. A node whose own view drops its
//     id (the others' blocklist reached it) yields too. Yielding closes
//     every client with 1001 and reports Evicted: the process must join
//     again under a new identity (topicast serve restarts itself).
type guard struct {
	n *Node
	// peers are the configured cluster addresses (static provider), with
	// this node's; nil with etcd or alone.
	peers []string
	// self is this node's member id, as the membership lists it.
	self string

	stop chan struct{}
	done chan struct{}

	// Owned by the guard's goroutine.
	excluded map[string]int // by peer address: rounds in a row it did not count this node
}

func newGuard(n *Node, peers []string) *guard {
	g := &guard{n: n, self: n.provider.memberID(n.cluster), stop: make(chan struct{}), done: make(chan struct{}),
		excluded: make(map[string]int)}
	for _, p := range peers {
		if !slices.Contains(g.peers, p) {
			g.peers = append(g.peers, p)
		}
	}
	if self := n.system.Address(); len(g.peers) > 0 && !slices.Contains(g.peers, self) {
		g.peers = append(g.peers, self)
	}
	return g
}

// quorate reports whether v counts a majority of the configured peers. An
// even split counts for the half that holds the smallest configured
// address. Without configured peers, a view that counts this member is
// quorate.
func (g *guard) quorate(v view) bool {
	if len(g.peers) == 0 {
		return v.hasID(g.self)
	}
	have := len(v.ids)
	return 2*have > len(g.peers) || (2*have == len(g.peers) && v.hasAddr(slices.Min(g.peers)))
}

func (g *guard) run() {
	defer close(g.done)
	t := time.NewTicker(guardTick)
	defer t.Stop()
	last := time.Now()
	ticks := 0
	every := int(max(g.n.cfg.GuardInterval/guardTick, 1))
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
		}
		stalled := time.Since(last) > g.n.cfg.StallThreshold
		if stalled {
			g.n.cfg.Logger.LogAttrs(context.Background(), slog.LevelWarn, "node was stalled; checking its membership",
				slog.String("node", g.n.cfg.Name), slog.Duration("stall", time.Since(last).Round(time.Millisecond)))
		}
		if ticks++; stalled || ticks >= every {
			ticks = 0
			g.round(stalled)
		}
		last = time.Now()
	}
}

// close stops the guard and waits for it.
func (g *guard) close() {
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	<-g.done
}

// round checks the node's own view, then its peers'.
func (g *guard) round(stalled bool) {
	n := g.n
	v := n.lookup.view()
	if v.joinedAt.IsZero() || n.closed.Load() || n.evicted.Load() {
		return
	}
	self := g.self
	n.setQuorate(g.quorate(v))
	if !v.hasID(self) {
		n.evict("this node's own view of the membership no longer counts it")
		return
	}
	if time.Since(v.joinedAt) < settleTime {
		return // the others may not have seen this node yet
	}
	targets := g.peers
	if targets == nil {
		targets = v.addrs
	}
	selfAddr := n.system.Address()
	answers := make(map[string]*actorpb.MembershipResponse, len(targets))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, addr := range targets {
		if addr == selfAddr {
			continue
		}
		wg.Go(func() {
			res, err := n.system.Root.RequestFuture(actor.NewPID(addr, ActivatorName), &actorpb.MembershipRequest{}, askTimeout).Result()
			r, ok := res.(*actorpb.MembershipResponse)
			if err != nil || !ok {
				return // unreachable: the membership provider deals with it
			}
			mu.Lock()
			answers[addr] = r
			mu.Unlock()
		})
	}
	wg.Wait()
	need := 2
	if stalled {
		need = 1
	}
	for addr, r := range answers {
		if !r.Settled || slices.Contains(r.Members, self) {
			g.excluded[addr] = 0
			continue
		}
		g.excluded[addr]++
		if g.excluded[addr] < need || !g.yields(v, r) {
			continue
		}
		n.evict(fmt.Sprintf("member %s (%s) no longer counts this node", addr, r.MemberId))
		return
	}
}

// yields decides whether this node gives way to a peer that does not count
// it: always when this node counts the peer (the peer dropped it and
// blocked its id for good), else (neither counts the other) when the peer's
// side is the stronger one.
func (g *guard) yields(v view, r *actorpb.MembershipResponse) bool {
	if v.hasID(r.MemberId) {
		return true
	}
	if mine := g.quorate(v); mine != r.Quorate {
		return r.Quorate
	}
	if len(r.Members) != len(v.ids) {
		return len(r.Members) > len(v.ids)
	}
	return r.MemberId < g.self
}
