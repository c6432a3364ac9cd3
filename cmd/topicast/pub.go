package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/topicast/topicast/sdk/wire"
)

func runPub(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("topicast pub", flag.ContinueOnError)
	fs.SetOutput(stderr)
	server := fs.String("server", "http://127.0.0.1:8080", "server base URL")
	apiKey := fs.String("api-key", "", "API key, if the server requires one")
	key := fs.String("key", "", "idempotency key: the same key on the same topic within 2 minutes publishes once")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the answer")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: topicast pub [flags] TOPIC JSON")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		fs.Usage()
		return &exitError{2, fmt.Errorf("pub needs TOPIC and JSON, got %d arguments", fs.NArg())}
	}
	topic, data := fs.Arg(0), fs.Arg(1)
	if err := wire.ValidateTopic(topic); err != nil {
		return err
	}
	if !json.Valid([]byte(data)) {
		return fmt.Errorf("the message is not valid JSON: %q (quote strings: '\"hello\"')", data)
	}
	body, err := json.Marshal(struct {
		Topic string          `json:"topic"`
		Data  json.RawMessage `json:"data"`
		Key   string          `json:"key,omitempty"`
	}{topic, json.RawMessage(data), *key})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	url := strings.TrimSuffix(*server, "/") + "/v1/publish"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if *apiKey != "" {
		req.Header.Set("Authorization", "Bearer "+*apiKey)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("publish to %s: %w", url, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var eb wire.ErrorBody
		if json.Unmarshal(answer, &eb) == nil && eb.Error.Code != "" {
			return fmt.Errorf("publish failed: HTTP %d %s: %s", resp.StatusCode, eb.Error.Code, eb.Error.Message)
		}
		return fmt.Errorf("publish failed: HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(answer))
	}
	fmt.Fprintf(stdout, "%s\n", bytes.TrimSpace(answer))
	return nil
}
