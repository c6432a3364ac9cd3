// Command topicast is the topicast server and its command-line tools.
//
//	topicast serve [flags]            run a node (HTTP on 127.0.0.1:8080)
//	topicast pub [flags] TOPIC JSON   publish one message
//	topicast sub [flags] TOPIC...     print the messages of topics
//	topicast bench [flags]            measure a server under load
//	topicast token [flags]            print a client token
//
// Run "topicast COMMAND -h" for a command's flags. Flags and configuration are
// parsed here only; the packages below take Config structs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "topicast:", err)
		}
		os.Exit(exitCode(err))
	}
}

// exitError carries a process exit code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var e *exitError
	if errors.As(err, &e) {
		return e.code
	}
	if errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

const usage = `topicast delivers messages from services to clients in real time.

Usage:
  topicast serve [flags]            run a node (HTTP on 127.0.0.1:8080)
  topicast pub [flags] TOPIC JSON   publish one message
  topicast sub [flags] TOPIC...     print the messages of topics
  topicast bench [flags]            measure a server under load
  topicast token [flags]            print a client token (JWT) for --token-secret
  topicast config check FILE        validate a serve config file and print the settings in force

Run "topicast COMMAND -h" for the flags of a command.
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return &exitError{2, errors.New("no command given")}
	}
	switch args[0] {
	case "serve":
		m := NewMain(stdout, stderr)
		if err := m.ParseFlags(args[1:]); err != nil {
			return err
		}
		hup, stop := m.notifyReload()
		defer stop()
		if err := m.Run(ctx); err != nil {
			return err
		}
		return m.serve(ctx, hup)
	case "pub":
		return runPub(ctx, args[1:], stdout, stderr)
	case "sub":
		return runSub(ctx, args[1:], stdout, stderr)
	case "bench":
		return runBench(ctx, args[1:], stdout, stderr)
	case "token":
		return runToken(args[1:], stdout, stderr)
	case "config":
		return runConfig(args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprint(stderr, usage)
		return &exitError{2, fmt.Errorf("unknown command %q", args[0])}
	}
}

// runConfig is `topicast config check FILE`: it reads FILE (and the
// TOPICAST_* environment) as serve would and prints the settings in force,
// or the file's errors with their lines (exit code 2).
func runConfig(args []string, stdout, stderr io.Writer) error {
	if len(args) != 2 || args[0] != "check" {
		return &exitError{2, errors.New("usage: topicast config check FILE")}
	}
	m := NewMain(stdout, stderr)
	if err := m.ParseFlags([]string{"--config", args[1]}); err != nil {
		var e *exitError
		if errors.As(err, &e) {
			return err
		}
		return &exitError{2, err}
	}
	printConfig(stdout, m.fs)
	printNamespaces(stdout, m.cfg.Node.Topic.Namespaces)
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return fmt.Sprint(*s) }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }
