package websocket

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"unsafe"
)

// poller tells which idle connections have something to read, with one
// epoll instance and one goroutine for all of them, so that an idle
// connection costs no goroutine and no read buffer.
//
// Each session is armed one-shot: after an event nothing more is reported
// for it until its reader has drained what arrived and arms it again, so at
// most one reader runs per session.
type poller struct {
	epfd int
	wake [2]int // a pipe that interrupts epoll_wait for close
	done chan struct{}

	mu       sync.Mutex
	sessions map[uint64]*session
	nextID   uint64
	closed   bool
}

const pollEvents = syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT

func newPoller() (*poller, error) {
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	p := &poller{epfd: epfd, done: make(chan struct{}), sessions: make(map[uint64]*session)}
	if err := syscall.Pipe2(p.wake[:], syscall.O_CLOEXEC|syscall.O_NONBLOCK); err != nil {
		syscall.Close(epfd)
		return nil, fmt.Errorf("pipe2: %w", err)
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, p.wake[0], &ev); err != nil {
		p.closeFDs()
		return nil, fmt.Errorf("epoll_ctl: %w", err)
	}
	go p.run()
	return p, nil
}

func (p *poller) closeFDs() {
	syscall.Close(p.wake[0])
	syscall.Close(p.wake[1])
	syscall.Close(p.epfd)
}

// fd returns the descriptor of s's connection.
func fd(s *session) (int, error) {
	sc, ok := s.conn.(syscall.Conn)
	if !ok {
		return 0, errors.New("connection has no file descriptor")
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n int
	if err := rc.Control(func(f uintptr) { n = int(f) }); err != nil {
		return 0, err
	}
	return n, nil
}

// add registers s, not yet armed: its first reader pass arms it.
func (p *poller) add(s *session) error {
	n, err := fd(s)
	if err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return errors.New("poller closed")
	}
	p.nextID++
	// Events carry the session's id, not its fd: a closed fd's number may
	// be reused at once by a new connection.
	ev := syscall.EpollEvent{Events: 0}
	setID(&ev, p.nextID)
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_ADD, n, &ev); err != nil {
		return fmt.Errorf("epoll_ctl add: %w", err)
	}
	s.pollID, s.poller = p.nextID, p
	p.sessions[s.pollID] = s
	return nil
}

// arm asks for one event when s has something to read.
func (p *poller) arm(s *session) error {
	n, err := fd(s)
	if err != nil {
		return err
	}
	ev := syscall.EpollEvent{Events: pollEvents}
	setID(&ev, s.pollID)
	if err := syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_MOD, n, &ev); err != nil {
		return fmt.Errorf("epoll_ctl mod: %w", err)
	}
	return nil
}

// remove unregisters s; it must be called before its connection is closed.
func (p *poller) remove(s *session) {
	p.mu.Lock()
	delete(p.sessions, s.pollID)
	p.mu.Unlock()
	if n, err := fd(s); err == nil {
		_ = syscall.EpollCtl(p.epfd, syscall.EPOLL_CTL_DEL, n, nil) // gone already when the fd closed
	}
}

func (p *poller) run() {
	defer close(p.done)
	events := make([]syscall.EpollEvent, 256)
	for {
		n, err := syscall.EpollWait(p.epfd, events, -1)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			return
		}
		for i := range events[:n] {
			id := getID(&events[i])
			if id == 0 {
				return // the wake pipe: closing
			}
			p.mu.Lock()
			s := p.sessions[id]
			p.mu.Unlock()
			if s != nil {
				go s.readReady()
			}
		}
	}
}

func (p *poller) close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	if _, err := syscall.Write(p.wake[1], []byte{1}); err != nil {
		return fmt.Errorf("wake poller: %w", err)
	}
	<-p.done
	p.closeFDs()
	return nil
}

// The 64-bit id lives in the event's Fd and Pad fields (the kernel's
// epoll_data union).
func setID(ev *syscall.EpollEvent, id uint64) {
	ev.Fd = int32(uint32(id))
	ev.Pad = int32(uint32(id >> 32))
}

func getID(ev *syscall.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// canWriteNonblocking tells whether writeNonblocking works here.
const canWriteNonblocking = true

// writeNonblocking writes what the socket fd takes now (Go keeps sockets
// non-blocking); a full socket is not an error, it takes 0 bytes.
//
// It enters the kernel without telling the scheduler (RawSyscall): a write
// to a non-blocking socket cannot block, yet a pooled writer makes thousands
// back to back, and when one of them ran long (on loopback the send also
// does the receiver's softirq work) the runtime's monitor handed the
// processor to another thread, which then fought the writer for the CPU.
// On one core that churn (futex, sched_yield, nanosleep by the thousand per
// second) made a delivery cost 21-24 us against a bare broadcaster's 17;
// without it, 14-17 us (docs/benchmarks.md, S4).
func writeNonblocking(fd uintptr, b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		r, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch errno {
		case 0:
			return int(r), nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return 0, nil
		default:
			return 0, errno
		}
	}
}
