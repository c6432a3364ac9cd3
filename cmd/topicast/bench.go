package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/topicast/topicast/internal/loadbench"
)

// workerFlag is the hidden flag that makes `topicast bench` a worker of
// another one's -procs run: its value is the worker's share, offset:conns.
const workerFlag = "worker"

// workerWaitDelay bounds how long a killed worker's pipes are waited for.
const workerWaitDelay = 5 * time.Second

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg loadbench.Config
	fs := flag.NewFlagSet("topicast bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var urls listFlag
	fs.Var(&urls, "url", "WebSocket URL of the server, or of several nodes of a cluster: comma-separated or repeated (default "+loadbench.DefaultURL+"); subscriber i connects to the (i mod n)th, publishers spread over them (with -transport wt or webrtc: one URL, where the publish URL and /v1/info come from)")
	fs.StringVar(&cfg.WTURL, "wt-url", "", "WebTransport URL, https://host:port/wt (default: webtransport.url of GET <publish URL>/v1/info)")
	fs.StringVar(&cfg.WebRTCURL, "webrtc-url", "", "WebRTC signalling URL, http://host:port/v1/webrtc (default: webrtc.url of GET <publish URL>/v1/info)")
	fs.StringVar(&cfg.CertHash, "cert-hash", "", "hex SHA-256 of the WebTransport certificate to pin (default: certHash of /v1/info)")
	fs.StringVar(&cfg.PublishURL, "publish-url", "", "base URL for POST /v1/publish (default: from each -url)")
	fs.StringVar(&cfg.APIKey, "api-key", "", "API key for publishing")
	fs.StringVar(&cfg.Token, "token", "", "client token, if the server requires one")
	fs.IntVar(&cfg.Conns, "conns", loadbench.DefaultConns, "subscriber connections, over all processes")
	fs.IntVar(&cfg.Topics, "topics", loadbench.DefaultTopics, "topics (subscriber i takes topic i%topics)")
	fs.Float64Var(&cfg.Rate, "rate", loadbench.DefaultRate, "messages per second, over all topics")
	fs.IntVar(&cfg.Size, "size", loadbench.DefaultSize, "message data size in bytes")
	fs.DurationVar(&cfg.Duration, "duration", loadbench.DefaultDuration, "how long to publish")
	fs.DurationVar(&cfg.Drain, "drain", loadbench.DefaultDrain, "how long to wait for the last deliveries")
	fs.IntVar(&cfg.Publishers, "pubs", 0, "concurrent publishers (default: the package default)")
	fs.StringVar(&cfg.Transport, "transport", loadbench.TransportWebSocket, "subscriber transport: ws (WebSocket), wt (WebTransport) or webrtc (WebRTC data channels)")
	fs.IntVar(&cfg.Procs, "procs", 1, fmt.Sprintf("load-generator processes: this one and procs-1 children of its own binary, each with an equal share of -conns (at most %d each)", loadbench.MaxConnsPerProcess))
	var pids listFlag
	fs.Var(&pids, "node-pids", "process ids of the nodes on this machine, in the order of -url, to read their CPU and RSS from /proc instead of their /metrics")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	quiet := fs.Bool("quiet", false, "no progress bar")
	plot := fs.String("plot", "", "write an SVG plot (latency histogram, rates over time) to this file")
	worker := fs.String(workerFlag, "", "internal: run as a worker of a -procs run with this share (offset:conns), talking JSON lines on stdin and stdout")
	fs.Usage = func() { benchUsage(fs, stderr) }
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch cfg.Transport {
	case loadbench.TransportWebSocket, loadbench.TransportWebTransport, loadbench.TransportWebRTC:
	default:
		return &exitError{2, fmt.Errorf("-transport %q is not supported by bench (ws, wt or webrtc)", cfg.Transport)}
	}
	cfg.URLs = urls
	for _, p := range pids {
		pid, err := strconv.Atoi(p)
		if err != nil || pid <= 0 {
			return &exitError{2, fmt.Errorf("-node-pids: %q is not a process id", p)}
		}
		cfg.NodePIDs = append(cfg.NodePIDs, pid)
	}
	if *worker != "" {
		share, err := loadbench.ParseShare(*worker)
		if err != nil {
			return &exitError{2, err}
		}
		return loadbench.RunWorker(ctx, cfg, share, os.Stdin, stdout)
	}
	if cfg.Procs > 1 {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("bench: -procs needs this program's path: %w", err)
		}
		cfg.StartWorker = func(ctx context.Context, share loadbench.Share) (*loadbench.Worker, error) {
			return startBenchWorker(ctx, exe, args, share, stderr)
		}
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

// startBenchWorker starts exe as a worker of this run: `bench` with the
// same flags and -worker share. The worker ends when its stdin closes
// (this process ended) or ctx is done (it is killed).
func startBenchWorker(ctx context.Context, exe string, args []string, share loadbench.Share, stderr io.Writer) (*loadbench.Worker, error) {
	argv := append([]string{"bench"}, slices.Clone(args)...)
	argv = append(argv, "-quiet", "-"+workerFlag, share.String())
	cmd := exec.CommandContext(ctx, exe, argv...)
	cmd.Stderr = stderr
	cmd.WaitDelay = workerWaitDelay
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &loadbench.Worker{In: in, Out: out, Wait: cmd.Wait}, nil
}

// benchUsage prints the flags but the hidden -worker.
func benchUsage(fs *flag.FlagSet, w io.Writer) {
	fmt.Fprintln(w, "Usage of topicast bench:")
	shown := flag.NewFlagSet(fs.Name(), flag.ContinueOnError)
	shown.SetOutput(w)
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != workerFlag {
			shown.Var(f.Value, f.Name, f.Usage)
			shown.Lookup(f.Name).DefValue = f.DefValue
		}
	})
	shown.PrintDefaults()
}

// listFlag is a flag of comma-separated values that may also be repeated.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for s := range strings.SplitSeq(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
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
