package transport

import (
	"sync"
	"time"

	"github.com/topicast/topicast/sdk/wire"
)

// Heartbeat defaults of the protocol.
const (
	DefaultPingAfter    = 25 * time.Second
	DefaultSilenceLimit = 60 * time.Second
	DefaultSweepEvery   = 5 * time.Second
)

// KeepaliveConfig configures a Keepalive.
type KeepaliveConfig struct {
	// PingAfter is how long a session may go without a write before it is
	// sent a ping. Zero means DefaultPingAfter.
	PingAfter time.Duration
	// SilenceLimit is how long a client may send nothing before its session
	// is closed. Zero means DefaultSilenceLimit; negative disables it.
	SilenceLimit time.Duration
	// SweepEvery is the resolution of both. Zero means DefaultSweepEvery.
	SweepEvery time.Duration
}

// Keepalive sends pings to quiet sessions and closes silent ones. A session
// is pinged after PingAfter without a write to it, and also after each
// PingAfter without a read from it (so a client on a busy topic is asked for
// a pong too); it is closed after SilenceLimit without a read. One
// sweeper goroutine serves every session of a node, so an idle session costs
// no timer and no goroutine. It is goroutine-safe.
type Keepalive struct {
	pingAfter, silence int // in sweeps
	every              time.Duration
	stop               chan struct{}
	done               chan struct{}

	mu       sync.Mutex
	sessions map[*Outbound]struct{}
}

// NewKeepalive starts a sweeper. Stop it with Close.
func NewKeepalive(cfg KeepaliveConfig) *Keepalive {
	if cfg.PingAfter == 0 {
		cfg.PingAfter = DefaultPingAfter
	}
	if cfg.SilenceLimit == 0 {
		cfg.SilenceLimit = DefaultSilenceLimit
	}
	if cfg.SweepEvery == 0 {
		cfg.SweepEvery = DefaultSweepEvery
	}
	k := &Keepalive{
		pingAfter: max(1, int(cfg.PingAfter/cfg.SweepEvery)),
		silence:   -1,
		every:     cfg.SweepEvery,
		stop:      make(chan struct{}),
		done:      make(chan struct{}),
		sessions:  make(map[*Outbound]struct{}),
	}
	if cfg.SilenceLimit > 0 {
		k.silence = max(1, int(cfg.SilenceLimit/cfg.SweepEvery))
	}
	go k.run()
	return k
}

// Len returns the number of sessions tracked.
func (k *Keepalive) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.sessions)
}

// Close stops the sweeper and waits for it.
func (k *Keepalive) Close() {
	select {
	case <-k.stop:
	default:
		close(k.stop)
	}
	<-k.done
}

func (k *Keepalive) add(o *Outbound) {
	k.mu.Lock()
	k.sessions[o] = struct{}{}
	k.mu.Unlock()
}

func (k *Keepalive) remove(o *Outbound) {
	k.mu.Lock()
	delete(k.sessions, o)
	k.mu.Unlock()
}

func (k *Keepalive) run() {
	defer close(k.done)
	t := time.NewTicker(k.every)
	defer t.Stop()
	var ping, silent []*Outbound
	for {
		select {
		case <-k.stop:
			return
		case <-t.C:
		}
		ping, silent = ping[:0], silent[:0]
		k.mu.Lock()
		for o := range k.sessions {
			if o.wrote.Swap(false) {
				o.idleWrites = 0
			} else {
				o.idleWrites++
			}
			if o.read.Swap(false) {
				o.idleReads = 0
			} else {
				o.idleReads++
			}
			switch {
			case k.silence > 0 && o.idleReads >= k.silence:
				silent = append(silent, o)
			case o.idleWrites >= k.pingAfter,
				// A client on a busy topic is never idle on our side, but it
				// must still be asked for a pong before it counts as silent.
				o.idleReads > 0 && o.idleReads%k.pingAfter == 0:
				o.idleWrites = 0
				ping = append(ping, o)
			}
		}
		k.mu.Unlock()
		for _, o := range ping {
			_ = o.Write(wire.PingFrame) // a closed session has nothing to keep alive
		}
		for _, o := range silent {
			o.Close(DisconnectSilent)
		}
	}
}
