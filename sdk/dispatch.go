package sdk

import "sync"

// delivery is one callback to make: a message for sub, or an event when sub
// is nil.
type delivery struct {
	sub *Subscription
	msg Message
	ev  Event
	// of is the subscription of a presence event, which goes nowhere once
	// it is unsubscribed, as its messages.
	of *Subscription
}

// dispatcher calls handlers and OnEvent from one goroutine, in the order
// deliveries were pushed. Its queue is unbounded so that the connection's
// reader never waits for the application (a handler may call Subscribe or
// Publish, whose replies that reader must read); handlers that block make
// it grow.
type dispatcher struct {
	onEvent func(Event)
	wake    chan struct{}
	stop    chan struct{}
	done    chan struct{}

	// Guarded by mu.
	mu    sync.Mutex
	queue []delivery
	spare []delivery
}

func newDispatcher(onEvent func(Event)) *dispatcher {
	return &dispatcher{
		onEvent: onEvent,
		wake:    make(chan struct{}, 1),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// push queues d. It never blocks.
func (d *dispatcher) push(x delivery) {
	d.mu.Lock()
	d.queue = append(d.queue, x)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// event queues an event, if anyone listens.
func (d *dispatcher) event(ev Event) {
	if d.onEvent != nil {
		d.push(delivery{ev: ev})
	}
}

// subEvent queues an event of s's presence, if anyone listens.
func (d *dispatcher) subEvent(s *Subscription, ev Event) {
	if d.onEvent != nil {
		d.push(delivery{ev: ev, of: s})
	}
}

// run is the dispatcher's goroutine; it returns after close.
func (d *dispatcher) run() {
	defer close(d.done)
	for {
		select {
		case <-d.stop:
			return
		case <-d.wake:
		}
		d.mu.Lock()
		batch := d.queue
		d.queue = d.spare[:0]
		d.spare = nil
		d.mu.Unlock()
		for i := range batch {
			select {
			case <-d.stop:
				return
			default:
			}
			d.call(&batch[i])
			batch[i] = delivery{}
		}
		d.mu.Lock()
		if d.spare == nil && cap(batch) <= 4096 {
			d.spare = batch[:0]
		}
		d.mu.Unlock()
	}
}

func (d *dispatcher) call(x *delivery) {
	if x.sub == nil {
		if x.of == nil || !x.of.closed.Load() {
			d.onEvent(x.ev)
		}
		return
	}
	if !x.sub.closed.Load() {
		x.sub.handler(x.msg)
	}
}

// close stops the dispatcher after the callback in progress, if any, and
// waits for it. Queued deliveries are dropped.
func (d *dispatcher) close() {
	close(d.stop)
	<-d.done
}
