package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/topicast/topicast/transport/wire"
)

// reply is the part of a server frame that sub needs to route it.
type reply struct {
	Op        string `json:"op"`
	ID        uint64 `json:"id"`
	Topic     string `json:"topic"`
	Epoch     string `json:"epoch"`
	Seq       uint64 `json:"seq"`
	Recovered *bool  `json:"recovered"`
	Code      string `json:"code"`
	Message   string `json:"message"`
}

func runSub(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("topicast sub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "ws://127.0.0.1:8080/ws", "WebSocket URL of the server")
	since := fs.String("since", "", "EPOCH:SEQ: recover the messages after SEQ (for every topic)")
	count := fs.Int("count", 0, "exit after this many messages (0: run until interrupted)")
	token := fs.String("token", "", "token, if the server requires one")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: topicast sub [flags] TOPIC...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	topics := fs.Args()
	if len(topics) == 0 {
		fs.Usage()
		return &exitError{2, errors.New("sub needs at least one TOPIC")}
	}
	for _, t := range topics {
		if err := wire.ValidateTopic(t); err != nil {
			return err
		}
	}
	var sincePos *wire.Position
	if *since != "" {
		epoch, seqStr, ok := strings.Cut(*since, ":")
		seq, err := strconv.ParseUint(seqStr, 10, 64)
		if !ok || epoch == "" || err != nil {
			return &exitError{2, fmt.Errorf("--since must be EPOCH:SEQ, got %q", *since)}
		}
		sincePos = &wire.Position{Epoch: epoch, Seq: seq}
	}
	url := *server
	if *token != "" {
		sep := "?"
		if strings.Contains(url, "?") {
			sep = "&"
		}
		url += sep + "token=" + *token
	}
	dialCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	conn, br, _, err := ws.Dialer{}.Dial(dialCtx, url)
	cancel()
	if err != nil {
		return fmt.Errorf("connect to %s: %w", *server, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()

	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	rw := struct {
		io.Reader
		io.Writer
	}{r, conn}

	for i, t := range topics {
		cmd := map[string]any{"op": "sub", "id": i + 1, "topic": t}
		if sincePos != nil {
			cmd["since"] = sincePos
		}
		b, _ := json.Marshal(cmd) // a map of plain values always marshals
		if err := wsutil.WriteClientText(conn, b); err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
	}
	out := bufio.NewWriter(stdout)
	defer out.Flush()
	got := 0
	for {
		msg, _, err := wsutil.ReadServerData(rw)
		if err != nil {
			out.Flush()
			if ctx.Err() != nil {
				return nil
			}
			var closed wsutil.ClosedError
			if errors.As(err, &closed) {
				return fmt.Errorf("server closed the connection: %d %s", closed.Code, closed.Reason)
			}
			return fmt.Errorf("connection lost: %w", err)
		}
		var ferr error
		wire.EachFrame(msg, func(frame []byte) {
			if ferr != nil {
				return
			}
			var rep reply
			if err := json.Unmarshal(frame, &rep); err != nil {
				ferr = fmt.Errorf("server sent a frame that is not JSON: %q", frame)
				return
			}
			switch rep.Op {
			case wire.OpMsg:
				if *count > 0 && got >= *count {
					return
				}
				out.Write(frame)
				out.WriteByte('\n')
				got++
			case wire.OpOK:
				if rep.ID >= 1 && int(rep.ID) <= len(topics) {
					out.Flush()
					line := fmt.Sprintf("subscribed %s %s %d", rep.Topic, rep.Epoch, rep.Seq)
					if rep.Recovered != nil && !*rep.Recovered {
						line += " (not recovered: messages were missed)"
					}
					fmt.Fprintln(stderr, line)
				}
			case wire.OpReset:
				out.Flush()
				fmt.Fprintf(stderr, "reset %s %s %d (the topic lost continuity)\n", rep.Topic, rep.Epoch, rep.Seq)
			case wire.OpError:
				ferr = fmt.Errorf("server error %s: %s", rep.Code, rep.Message)
			case wire.OpPing:
				ferr = wsutil.WriteClientText(conn, wire.PongFrame)
			}
		})
		if ferr != nil {
			return ferr
		}
		if *count > 0 && got >= *count {
			return nil
		}
		out.Flush()
	}
}
