package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/topicast/topicast/internal/loadbench"
)

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg loadbench.Config
	fs := flag.NewFlagSet("topicast bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.URL, "url", loadbench.DefaultURL, "WebSocket URL of the server (with -transport wt or webrtc: where the publish URL and /v1/info come from)")
	fs.StringVar(&cfg.WTURL, "wt-url", "", "WebTransport URL, https://host:port/wt (default: webtransport.url of GET <publish URL>/v1/info)")
	fs.StringVar(&cfg.WebRTCURL, "webrtc-url", "", "WebRTC signalling URL, http://host:port/v1/webrtc (default: webrtc.url of GET <publish URL>/v1/info)")
	fs.StringVar(&cfg.CertHash, "cert-hash", "", "hex SHA-256 of the WebTransport certificate to pin (default: certHash of /v1/info)")
	fs.StringVar(&cfg.PublishURL, "publish-url", "", "base URL for POST /v1/publish (default: from -url)")
	fs.StringVar(&cfg.APIKey, "api-key", "", "API key for publishing")
	fs.StringVar(&cfg.Token, "token", "", "client token, if the server requires one")
	fs.IntVar(&cfg.Conns, "conns", loadbench.DefaultConns, "subscriber connections")
	fs.IntVar(&cfg.Topics, "topics", loadbench.DefaultTopics, "topics (subscriber i takes topic i%topics)")
	fs.Float64Var(&cfg.Rate, "rate", loadbench.DefaultRate, "messages per second, over all topics")
	fs.IntVar(&cfg.Size, "size", loadbench.DefaultSize, "message data size in bytes")
	fs.DurationVar(&cfg.Duration, "duration", loadbench.DefaultDuration, "how long to publish")
	fs.DurationVar(&cfg.Drain, "drain", loadbench.DefaultDrain, "how long to wait for the last deliveries")
	fs.IntVar(&cfg.Publishers, "pubs", 0, "concurrent publishers (default: the package default)")
	fs.StringVar(&cfg.Transport, "transport", loadbench.TransportWebSocket, "subscriber transport: ws (WebSocket), wt (WebTransport) or webrtc (WebRTC data channels)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	quiet := fs.Bool("quiet", false, "no progress bar")
	plot := fs.String("plot", "", "write an SVG plot (latency histogram, rates over time) to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch cfg.Transport {
	case loadbench.TransportWebSocket, loadbench.TransportWebTransport, loadbench.TransportWebRTC:
	default:
		return &exitError{2, fmt.Errorf("-transport %q is not supported by bench (ws, wt or webrtc)", cfg.Transport)}
	}
	if !*quiet {
		cfg.Progress = stderr
	}
	rep, err := loadbench.Run(ctx, cfg)
	if rep != nil {
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if jerr := enc.Encode(rep); jerr != nil {
				return jerr
			}
		} else {
			rep.WriteText(stdout)
		}
		if *plot != "" {
			if perr := writePlot(*plot, rep); perr != nil {
				return perr
			}
			fmt.Fprintf(stderr, "plot written to %s\n", *plot)
		}
	}
	if err != nil {
		return err
	}
	if !rep.OK() {
		return errors.New("bench: an invariant failed (lost, gaps, duplicates or reordering); see the report")
	}
	return nil
}

// writePlot writes rep's SVG plot to path.
func writePlot(path string, rep *loadbench.Report) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--plot: %w", err)
	}
	if err := rep.WritePlot(f); err != nil {
		f.Close()
		return fmt.Errorf("--plot: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--plot: %w", err)
	}
	return nil
}
