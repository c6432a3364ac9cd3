//go:build !linux

package websocket

import "errors"

// poller is Linux-only; elsewhere each session has a reader goroutine.
type poller struct{}

func newPoller() (*poller, error) { return nil, errors.New("no epoll on this platform") }

func (p *poller) add(*session) error { return errors.New("unreachable") }
func (p *poller) arm(*session) error { return errors.New("unreachable") }
func (p *poller) remove(*session)    {}
func (p *poller) close() error       { return nil }

// canWriteNonblocking: elsewhere each session writes on its own goroutine.
const canWriteNonblocking = false

func writeNonblocking(uintptr, []byte) (int, error) { return 0, errors.New("unreachable") }
