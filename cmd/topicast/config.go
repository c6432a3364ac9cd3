package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/parser"

	"github.com/topicast/topicast/actors"
	"github.com/topicast/topicast/transport/auth"
)

// envPrefix names the environment variables that set serve's flags:
// TOPICAST_ and the flag's name in upper case with "_" for "-", for
// example TOPICAST_HTTP and TOPICAST_TOKEN_SECRET.
const envPrefix = "TOPICAST_"

// secretFlags are printed masked by `topicast config check`.
var secretFlags = map[string]bool{"token-secret": true, "api-key": true}

// repeatable reports whether a flag takes several values (a YAML list, or
// a comma-separated environment variable).
func repeatable(f *flag.Flag) bool {
	_, ok := f.Value.(*stringList)
	return ok
}

// envName is the environment variable of flag name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// applyEnvAndFile sets the flags of fs that the command line left unset,
// from the environment first and then from the config file at path (if
// any): the command line wins over the environment, which wins over the
// file, which wins over the defaults. The file is YAML: a mapping of flag
// names (without dashes) to values, lists for repeatable flags. Errors name
// the file and line. The returned sources tell, for each flag set by the
// environment or the file, where (for later errors about its value).
//
// The file's namespaces key (PROTOCOL.md 1.1) is parsed into namespaces.
func applyEnvAndFile(fs *flag.FlagSet, path string, lookupEnv func(string) (string, bool)) (sources map[string]string, namespaces actors.Namespaces, err error) {
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	sources = make(map[string]string)

	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || f.Name == "config" {
			return
		}
		v, ok := lookupEnv(envName(f.Name))
		if !ok {
			return
		}
		set[f.Name] = true
		sources[f.Name] = envName(f.Name)
		vals := []string{v}
		if repeatable(f) {
			vals = splitList(v)
		}
		for _, v := range vals {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("%s: invalid value %q: %w", envName(f.Name), v, err))
			}
		}
	})
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	if path == "" {
		return sources, nil, nil
	}
	entries, err := readConfigFile(path)
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		if e.key == "namespaces" {
			namespaces, err = parseNamespaces(path, e)
			if err != nil {
				errs = append(errs, err)
			}
			continue
		}
		f := fs.Lookup(e.key)
		switch {
		case f == nil || e.key == "config":
			errs = append(errs, fmt.Errorf("%s:%d: unknown key %q: keys are the flags of topicast serve, without dashes", path, e.line, e.key))
			continue
		case e.list && !repeatable(f):
			errs = append(errs, fmt.Errorf("%s:%d: %s takes one value, not a list", path, e.line, e.key))
			continue
		case set[e.key]:
			continue // the command line or the environment said otherwise
		}
		sources[e.key] = fmt.Sprintf("%s:%d", path, e.line)
		for _, v := range e.values {
			if err := fs.Set(e.key, v); err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: %s: invalid value %q: %w", path, e.line, e.key, v, err))
			}
		}
	}
	return sources, namespaces, errors.Join(errs...)
}

// parseNamespaces reads the namespaces key: a list of mappings, each with a
// pattern and options (PROTOCOL.md 1.1). In the file, history_size 0 keeps
// no history (as --history-size 0 does); a missing option takes the node's
// setting.
func parseNamespaces(path string, e configEntry) (actors.Namespaces, error) {
	seq, ok := e.node.(*ast.SequenceNode)
	if !ok {
		return nil, fmt.Errorf("%s:%d: namespaces must be a list of mappings (- pattern: ...)", path, e.line)
	}
	var out actors.Namespaces
	var errs []error
	for i, item := range seq.Values {
		fail := func(n ast.Node, format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s:%d: namespace %d: %s", path, line(n), i+1, fmt.Sprintf(format, args...)))
		}
		m, ok := item.(*ast.MappingNode)
		if !ok {
			if mv, single := item.(*ast.MappingValueNode); single {
				m = &ast.MappingNode{Values: []*ast.MappingValueNode{mv}}
			} else {
				fail(item, "must be a mapping with a pattern and options")
				continue
			}
		}
		var ns actors.Namespace
		for _, mv := range m.Values {
			key, _ := scalar(mv.Key)
			val, isScalar := scalar(mv.Value)
			if !isScalar {
				fail(mv.Key, "%s must be a single value", key)
				continue
			}
			intVal := func(min int) int {
				n, err := strconv.Atoi(val)
				if err != nil || n < min {
					fail(mv.Key, "%s must be an integer >= %d, got %q", key, min, val)
				}
				return n
			}
			boolVal := func() *bool {
				b, err := strconv.ParseBool(val)
				if err != nil {
					fail(mv.Key, "%s must be true or false, got %q", key, val)
				}
				return &b
			}
			switch key {
			case "pattern":
				if err := auth.ValidatePattern(val); err != nil || val == "" {
					fail(mv.Key, "pattern %q is not a topic name or a prefix followed by \"*\"", val)
				}
				ns.Pattern = val
			case "history_size":
				if ns.HistorySize = intVal(0); ns.HistorySize == 0 {
					ns.HistorySize = -1 // none; 0 in actors.Namespace means the node's
				}
			case "history_ttl":
				d, err := time.ParseDuration(val)
				if err != nil || d <= 0 {
					fail(mv.Key, "history_ttl must be a positive duration (30s, 10m), got %q", val)
				}
				ns.HistoryTTL = d
			case "max_message":
				ns.MaxMessage = intVal(1)
			case "latest":
				ns.Latest = boolVal()
			case "delta":
				ns.Delta = boolVal()
			case "datagram":
				ns.Datagram = boolVal()
			case "client_publish":
				ns.ClientPublish = boolVal()
			case "presence":
				ns.Presence = *boolVal()
			case "join_leave":
				ns.JoinLeave = *boolVal()
			default:
				fail(mv.Key, "unknown option %q (pattern, history_size, history_ttl, max_message, latest, delta, datagram, client_publish, presence, join_leave)", key)
			}
		}
		if ns.Pattern == "" {
			fail(item, "a namespace needs a pattern")
		}
		out = append(out, ns)
	}
	return out, errors.Join(errs...)
}

// configEntry is one key of a config file.
type configEntry struct {
	key    string
	line   int
	values []string
	list   bool
	// node is the value of the namespaces key.
	node ast.Node
}

// readConfigFile parses the YAML config file at path into its keys, in
// order, with their lines.
func readConfigFile(path string) ([]configEntry, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	file, err := parser.ParseBytes(data, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(file.Docs) == 0 || file.Docs[0].Body == nil {
		return nil, nil // an empty file sets nothing
	}
	if len(file.Docs) > 1 {
		return nil, fmt.Errorf("%s: one YAML document expected, found %d", path, len(file.Docs))
	}
	var values []*ast.MappingValueNode
	switch body := file.Docs[0].Body.(type) {
	case *ast.MappingNode:
		values = body.Values
	case *ast.MappingValueNode:
		values = []*ast.MappingValueNode{body}
	default:
		return nil, fmt.Errorf("%s:%d: the file must be a mapping of flag names to values", path, line(body))
	}
	var entries []configEntry // the parser refuses a key set twice
	var errs []error
	for _, mv := range values {
		key, ok := scalar(mv.Key)
		if !ok {
			errs = append(errs, fmt.Errorf("%s:%d: a key must be a flag name", path, line(mv.Key)))
			continue
		}
		e := configEntry{key: key, line: line(mv.Key)}
		if key == "namespaces" {
			e.node = mv.Value
			entries = append(entries, e)
			continue
		}
		switch v := mv.Value.(type) {
		case *ast.SequenceNode:
			e.list = true
			for _, item := range v.Values {
				s, ok := scalar(item)
				if !ok {
					errs = append(errs, fmt.Errorf("%s:%d: %s: a list item must be a single value", path, line(item), key))
					continue
				}
				e.values = append(e.values, s)
			}
		default:
			s, ok := scalar(v)
			if !ok {
				errs = append(errs, fmt.Errorf("%s:%d: %s must be a single value or a list", path, e.line, key))
				continue
			}
			e.values = []string{s}
		}
		entries = append(entries, e)
	}
	return entries, errors.Join(errs...)
}

// scalar returns the text of a YAML scalar (strings without their quotes).
func scalar(n ast.Node) (string, bool) {
	switch v := n.(type) {
	case *ast.StringNode:
		return v.Value, true
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode:
		return v.GetToken().Value, true
	case *ast.NullNode:
		return "", true
	}
	return "", false
}

func line(n ast.Node) int {
	if n == nil || n.GetToken() == nil {
		return 0
	}
	return n.GetToken().Position.Line
}

// printConfig writes the flags of fs as a config file: every setting in
// force. Secrets that are set are shown as comments without their value,
// so the output reads back as a config file without them.
func printConfig(w io.Writer, fs *flag.FlagSet) {
	var names []string
	fs.VisitAll(func(f *flag.Flag) {
		if f.Name != "config" {
			names = append(names, f.Name)
		}
	})
	sort.Strings(names)
	for _, name := range names {
		f := fs.Lookup(name)
		l, isList := f.Value.(*stringList)
		switch {
		case secretFlags[name] && isList && len(*l) > 0:
			fmt.Fprintf(w, "# %s: %d set, not shown\n", name, len(*l))
		case secretFlags[name] && !isList && f.Value.String() != "":
			fmt.Fprintf(w, "# %s: set, not shown\n", name)
		case isList && len(*l) == 0:
			fmt.Fprintf(w, "%s: []\n", name)
		case isList:
			fmt.Fprintf(w, "%s:\n", name)
			for _, v := range *l {
				fmt.Fprintf(w, "  - %q\n", v)
			}
		default:
			fmt.Fprintf(w, "%s: %q\n", name, f.Value.String())
		}
	}
}

// printNamespaces writes ns as the namespaces key of a config file.
func printNamespaces(w io.Writer, ns actors.Namespaces) {
	if len(ns) == 0 {
		return
	}
	fmt.Fprintln(w, "namespaces:")
	for _, n := range ns {
		fmt.Fprintf(w, "  - pattern: %q\n", n.Pattern)
		switch {
		case n.HistorySize < 0:
			fmt.Fprintln(w, "    history_size: 0")
		case n.HistorySize > 0:
			fmt.Fprintf(w, "    history_size: %d\n", n.HistorySize)
		}
		if n.HistoryTTL > 0 {
			fmt.Fprintf(w, "    history_ttl: %s\n", n.HistoryTTL)
		}
		if n.MaxMessage > 0 {
			fmt.Fprintf(w, "    max_message: %d\n", n.MaxMessage)
		}
		for _, o := range []struct {
			name string
			v    *bool
		}{{"latest", n.Latest}, {"delta", n.Delta}, {"datagram", n.Datagram}, {"client_publish", n.ClientPublish}} {
			if o.v != nil {
				fmt.Fprintf(w, "    %s: %v\n", o.name, *o.v)
			}
		}
		if n.Presence {
			fmt.Fprintln(w, "    presence: true")
		}
		if n.JoinLeave {
			fmt.Fprintln(w, "    join_leave: true")
		}
	}
}
