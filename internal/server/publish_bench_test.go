package server

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/textproto"
	"strconv"
	"testing"
)

// rawPublisher posts to /v1/publish over one keep-alive connection with
// hand-written HTTP/1.1, so that what a benchmark counts is the server's
// work, not a client library's.
type rawPublisher struct {
	conn net.Conn
	r    *bufio.Reader
	req  []byte
	body []byte
}

func dialRawPublisher(addr string) (*rawPublisher, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &rawPublisher{conn: c, r: bufio.NewReader(c)}, nil
}

// publish sends one message to topic and reads the answer, which must be 200.
func (p *rawPublisher) publish(topic string, data []byte) error {
	p.body = append(p.body[:0], `{"topic":"`...)
	p.body = append(p.body, topic...)
	p.body = append(p.body, `","data":`...)
	p.body = append(p.body, data...)
	p.body = append(p.body, '}')
	p.req = append(p.req[:0], "POST /v1/publish HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: "...)
	p.req = strconv.AppendInt(p.req, int64(len(p.body)), 10)
	p.req = append(p.req, "\r\n\r\n"...)
	p.req = append(p.req, p.body...)
	if _, err := p.conn.Write(p.req); err != nil {
		return err
	}
	status, err := p.r.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(status, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("answer %q", status)
	}
	length := -1
	for {
		line, err := p.r.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if name, value, ok := bytes.Cut(line, []byte(":")); ok && textproto.CanonicalMIMEHeaderKey(string(name)) == "Content-Length" {
			if length, err = strconv.Atoi(string(bytes.TrimSpace(value))); err != nil {
				return err
			}
		}
	}
	if length < 0 {
		return fmt.Errorf("answer without Content-Length")
	}
	_, err = p.r.Discard(length)
	return err
}

// BenchmarkPublishHTTP is a publish through the whole node: HTTP/1.1 keep-alive,
// the publish handler, the topic actor and its history, over 1,000 topics
// without subscribers (BenchmarkFanOut* in actors measure the delivery side).
// B/op and allocs/op count the whole process, so they show what one publish
// leaves for the garbage collector; the raw client allocates almost nothing.
func BenchmarkPublishHTTP(b *testing.B) {
	srv, err := Start(context.Background(), Config{HTTPAddr: "127.0.0.1:0", PublishRate: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	p, err := dialRawPublisher(srv.Addr())
	if err != nil {
		b.Fatal(err)
	}
	defer p.conn.Close()
	const topics = 1000
	names := make([]string, topics)
	for i := range names {
		names[i] = "t" + strconv.Itoa(i)
		if err := p.publish(names[i], []byte(`{"warm":true}`)); err != nil { // the topic actors exist before the clock starts
			b.Fatal(err)
		}
	}
	data := []byte(`{"_k":1,"_q":1,"_ts":1764775000000000000,"p":"` + string(bytes.Repeat([]byte("x"), 48)) + `"}`)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := p.publish(names[i%topics], data); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer() // the server's Close (seconds: it drains) is no publish
}
