package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/topicast/topicast/transport/auth"
)

// runToken prints a client token signed with the server's --token-secret.
func runToken(args []string, stdout, stderr io.Writer) error {
	var subscribe, publish stringList
	fs := flag.NewFlagSet("topicast token", flag.ContinueOnError)
	fs.SetOutput(stderr)
	secret := fs.String("secret", "", "the server's --token-secret")
	secretFile := fs.String("secret-file", "", "file holding the secret (the server's --token-secret-file)")
	sub := fs.String("sub", "", "client id (the sub claim); required")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid")
	fs.Var(&subscribe, "subscribe", `topic pattern the client may subscribe to: a topic, a prefix ending in "*", or "*" for all (repeatable)`)
	fs.Var(&publish, "publish", "topic pattern the client may publish to (repeatable)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: topicast token --secret S --sub ID [--subscribe PATTERN]... [--publish PATTERN]... [--ttl 1h]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return &exitError{2, fmt.Errorf("token takes no arguments, got %q", fs.Args())}
	}
	key := *secret
	switch {
	case key != "" && *secretFile != "":
		return &exitError{2, errors.New("--secret and --secret-file exclude each other")}
	case *secretFile != "":
		b, err := os.ReadFile(*secretFile)
		if err != nil {
			return fmt.Errorf("--secret-file: %w", err)
		}
		key = strings.TrimSpace(string(b))
	}
	if key == "" || *sub == "" {
		fs.Usage()
		return &exitError{2, errors.New("token needs --secret (or --secret-file) and --sub")}
	}
	if *ttl <= 0 {
		return &exitError{2, errors.New("--ttl must be positive")}
	}
	tok, err := auth.Sign([]byte(key), auth.Claims{
		Subject:   *sub,
		Expires:   time.Now().Add(*ttl),
		Subscribe: auth.Patterns(subscribe),
		Publish:   auth.Patterns(publish),
	})
	if err != nil {
		return &exitError{2, err}
	}
	_, err = fmt.Fprintln(stdout, tok)
	return err
}
