package sdk_test

// The examples run against the in-memory broker that TestMain starts
// (broker_test.go): wsURL is its WebSocket endpoint (like
// "ws://127.0.0.1:8080/ws"), httpURL its HTTP address (like
// "http://127.0.0.1:8080") and apiKey its API key. test/sdk runs the same
// flows (dial, subscribe with recovery, publish, batches) against a real
// server.

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/topicast/topicast/sdk"
	"github.com/topicast/topicast/sdk/wire"
)

// A service publishes with a Publisher; an application subscribes with a
// Client.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := sdk.Dial(ctx, wsURL, sdk.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	got := make(chan sdk.Message, 16)
	if _, err := c.Subscribe(ctx, "example.scores", func(m sdk.Message) { got <- m }); err != nil {
		log.Fatal(err)
	}

	p, err := sdk.NewPublisher(httpURL, sdk.PublisherConfig{APIKey: apiKey})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	for goals := 1; goals <= 3; goals++ {
		if _, err := p.Publish(ctx, "example.scores", map[string]int{"goals": goals}); err != nil {
			log.Fatal(err)
		}
	}
	for range 3 {
		m := <-got
		fmt.Println(m.Topic, string(m.Data))
	}
	// Output:
	// example.scores {"goals":1}
	// example.scores {"goals":2}
	// example.scores {"goals":3}
}

// Resume where the application stopped: keep the (epoch, seq) of the last
// message handled, and subscribe with Since. OnEvent says when the server
// could not recover (EventReset).
func ExampleSince() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := sdk.NewPublisher(httpURL, sdk.PublisherConfig{APIKey: apiKey})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	var handled wire.PublishResult // as if the application had stored it
	for i, move := range []string{"e4", "e5", "Nf3"} {
		res, err := p.Publish(ctx, "example.game", move)
		if err != nil {
			log.Fatal(err)
		}
		if i == 0 {
			handled = res
		}
	}

	c, err := sdk.Dial(ctx, wsURL, sdk.Config{
		OnEvent: func(e sdk.Event) {
			if e.Kind == sdk.EventReset {
				fmt.Println("lost continuity:", e)
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	got := make(chan sdk.Message, 16)
	_, err = c.Subscribe(ctx, "example.game", func(m sdk.Message) { got <- m },
		sdk.Since(handled.Epoch, handled.Seq))
	if err != nil {
		log.Fatal(err)
	}
	for range 2 {
		fmt.Println(string((<-got).Data))
	}
	// Output:
	// "e5"
	// "Nf3"
}

// A client may publish too, when its token allows it. Errors from the
// server are *wire.Error.
func ExampleClient_Publish() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := sdk.Dial(ctx, wsURL, sdk.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	res, err := c.Publish(ctx, "example.chat", map[string]string{"text": "hi"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("published to", res.Topic, "in epoch", len(res.Epoch) > 0)

	_, err = c.Publish(ctx, "sys:status", "no")
	var e *wire.Error
	if errors.As(err, &e) {
		fmt.Println("refused:", e.Code)
	}
	// Output:
	// published to example.chat in epoch true
	// refused: forbidden
}

// Batching gathers concurrent Publish calls into one request; each call
// still gets its own result.
func ExampleNewPublisher() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := sdk.NewPublisher(httpURL, sdk.PublisherConfig{
		APIKey:     apiKey,
		BatchSize:  100,
		BatchDelay: 5 * time.Millisecond,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	results := make(chan uint64, 3)
	for i := range 3 {
		go func() {
			res, err := p.Publish(ctx, "example.batch", i)
			if err != nil {
				log.Fatal(err)
			}
			results <- res.Seq
		}()
	}
	seqs := map[uint64]bool{}
	for range 3 {
		seqs[<-results] = true
	}
	fmt.Println("distinct seqs:", len(seqs))
	// Output:
	// distinct seqs: 3
}

// A chat room: a client enters the room's topic with its info, and a
// subscription with Presence learns from OnEvent who comes and goes.
// Client.Presence lists who is there.
func ExampleSubscription_Enter() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	members := make(chan sdk.Event, 16)
	c, err := sdk.Dial(ctx, wsURL, sdk.Config{
		OnEvent: func(e sdk.Event) {
			if e.Member != nil { // EventJoin, EventUpdate, EventLeave
				members <- e
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	room, err := c.Subscribe(ctx, "example.room", func(sdk.Message) {}, sdk.Presence())
	if err != nil {
		log.Fatal(err)
	}

	if err := room.Enter(ctx, map[string]string{"name": "ada"}); err != nil {
		log.Fatal(err)
	}
	e := <-members
	fmt.Println(e.Kind, string(e.Member.Info))
	p, err := c.Presence(ctx, "example.room")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(p.Count, "in the room:", string(p.Members[0].Info))
	if err := room.Leave(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println((<-members).Kind)
	// Output:
	// join {"name":"ada"}
	// 1 in the room: {"name":"ada"}
	// leave
}
