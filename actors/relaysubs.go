package actors

// relaySub is one subscriber of a relay and how it wants its messages.
type relaySub struct {
	conn     *ConnRef
	datagram bool
	// latest: only the newest message waits in the session's queue (the
	// session is a transport.LatestSession; the connection actor checked).
	latest bool
	// delta: messages go as fossil deltas of the one before when smaller.
	delta bool
	// presence: the topic's presence events go to it too.
	presence bool
}

// subSet is a relay's subscribers: a map, so that a subscriber leaves in
// O(1) (20,000 leaving at once cost O(N^2) on a slice), and a slice rebuilt
// after changes, which every delivery iterates (the idea of nats' Sublist
// and centrifuge's hub: changes are rare next to deliveries).
type subSet struct {
	m     map[*ConnRef]relaySub
	list  []relaySub
	dirty bool
}

func (s *subSet) len() int { return len(s.m) }

func (s *subSet) add(sub relaySub) {
	if s.m == nil {
		s.m = make(map[*ConnRef]relaySub)
	}
	s.m[sub.conn] = sub
	s.dirty = true
}

// remove takes conn's subscription out, reporting whether it was there.
func (s *subSet) remove(conn *ConnRef) (relaySub, bool) {
	sub, ok := s.m[conn]
	if ok {
		delete(s.m, conn)
		s.dirty = true
	}
	return sub, ok
}

// all returns the subscribers; the slice is valid until the next change.
func (s *subSet) all() []relaySub {
	if s.dirty {
		clear(s.list)
		s.list = s.list[:0]
		for _, sub := range s.m {
			s.list = append(s.list, sub)
		}
		if cap(s.list) > 64 && len(s.list) < cap(s.list)/4 {
			s.list = append([]relaySub(nil), s.list...) // give back what a crowd that left took
		}
		s.dirty = false
	}
	return s.list
}
