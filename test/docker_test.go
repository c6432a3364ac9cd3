package test

import (
	"bufio"
	"debug/buildinfo"
	"debug/elf"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/stretchr/testify/require"
)

// The container recipe, relative to this directory.
const (
	dockerfile  = "../Dockerfile"
	composeFile = "../deploy/compose.yaml"
	buildScript = "scripts/build-static.sh" // as the Dockerfile names it, from the root
)

// TestContainerRecipe checks what Docker would build and run, without
// Docker (the tests' machines have none):
//   - the Dockerfile builds with scripts/build-static.sh and nothing else,
//     from the Go of go.mod, into a distroless or scratch image that runs
//     topicast serve as a non-root user;
//   - that script, run here, makes a static binary (no ELF interpreter, no
//     shared library), built with CGO_ENABLED=0 and -trimpath (its build
//     info says so), that runs;
//   - the Dockerfile's default flags and each compose node's command are
//     flags that topicast serve accepts, with valid values (`topicast config
//     check` on them, with that binary);
//   - the compose file wires three nodes to its Redis (append-only, fsync
//     always) and etcd.
func TestContainerRecipe(t *testing.T) {
	df := parseDockerfile(t)
	bin := filepath.Join(t.TempDir(), "topicast")

	t.Run("dockerfile", func(t *testing.T) {
		require.GreaterOrEqual(t, len(df.stages), 2, "multi-stage")
		build, final := df.stages[0], df.stages[len(df.stages)-1]

		// The build stage's Go is go.mod's: an older one would fetch a
		// toolchain in the build, or fail.
		data, err := os.ReadFile("../go.mod")
		require.NoError(t, err)
		var goVersion string
		for l := range strings.Lines(string(data)) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "go "); ok {
				goVersion = strings.TrimSpace(v)
			}
		}
		require.NotEmpty(t, goVersion, "go line of go.mod")
		require.True(t, strings.HasPrefix(build.from, "golang:"+goVersion+"-") || build.from == "golang:"+goVersion,
			"build stage FROM %s, go.mod says go %s", build.from, goVersion)

		// The binary is built by the script and only by it.
		var builds []string
		for _, s := range df.stages {
			for _, run := range s.runs {
				if strings.Contains(run, "go build") || strings.Contains(run, "go install") {
					t.Errorf("the Dockerfile builds by itself (%q): call %s, which the tests check", run, buildScript)
				}
				if strings.Contains(run, buildScript) {
					builds = append(builds, run)
				}
			}
		}
		require.Len(t, builds, 1, "one RUN of %s", buildScript)

		require.True(t, final.from == "scratch" || strings.HasPrefix(final.from, "gcr.io/distroless/static"),
			"final stage FROM %s: distroless static or scratch", final.from)
		require.NotEmpty(t, final.user, "final stage sets USER")
		user, _, _ := strings.Cut(final.user, ":")
		require.NotContains(t, []string{"root", "0"}, user, "final stage runs as root")
		require.Equal(t, []string{"/topicast", "serve"}, final.entrypoint)
		require.Contains(t, final.expose, "8080/tcp")
		require.NotEmpty(t, final.cmd, "default serve flags")
	})

	// Built here, not in a subtest: the subtests after it run the binary,
	// and -run may pick them alone.
	// Run as the Dockerfile runs it, so a lost executable bit shows here.
	cmd := exec.Command("./"+buildScript, bin)
	cmd.Dir = ".."
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s:\n%s", buildScript, out)

	t.Run("static binary", func(t *testing.T) {
		f, err := elf.Open(bin)
		require.NoError(t, err)
		defer f.Close()
		for _, p := range f.Progs {
			require.NotEqual(t, elf.PT_INTERP, p.Type, "the binary asks for a dynamic loader")
		}
		libs, err := f.ImportedLibraries()
		require.NoError(t, err)
		require.Empty(t, libs, "shared libraries (DT_NEEDED)")

		info, err := buildinfo.ReadFile(bin)
		require.NoError(t, err)
		settings := make(map[string]string)
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		require.Equal(t, "0", settings["CGO_ENABLED"], "build settings %v", settings)
		require.Equal(t, "true", settings["-trimpath"], "build settings %v", settings)

		out, err := exec.Command(bin, "--help").CombinedOutput()
		require.NoError(t, err, "%s", out)
		require.Contains(t, string(out), "topicast serve")
	})

	t.Run("dockerfile flags", func(t *testing.T) {
		checkServeFlags(t, bin, df.stages[len(df.stages)-1].cmd)
	})

	t.Run("compose", func(t *testing.T) {
		data, err := os.ReadFile(composeFile)
		require.NoError(t, err)
		var c struct {
			Services map[string]struct {
				Image     string   `yaml:"image"`
				Build     any      `yaml:"build"`
				Hostname  string   `yaml:"hostname"`
				Command   []string `yaml:"command"`
				DependsOn any      `yaml:"depends_on"` // a list, or a map with conditions
			} `yaml:"services"`
		}
		// Nodes share their settings through a YAML anchor and merge key
		// (<<), which the parser must resolve as compose does.
		require.NoError(t, yaml.Unmarshal(data, &c), composeFile)

		redis, ok := c.Services["redis"]
		require.True(t, ok, "a redis service")
		require.True(t, hasFlag(redis.Command, "--appendonly", "yes"), "redis command %q: --appendonly yes", redis.Command)
		require.True(t, hasFlag(redis.Command, "--appendfsync", "always"), "redis command %q: --appendfsync always", redis.Command)
		_, ok = c.Services["etcd"]
		require.True(t, ok, "an etcd service")

		var nodes []string
		names := make(map[string]bool)
		for name, s := range c.Services {
			if s.Build == nil {
				continue // not built from the Dockerfile: not a topicast node
			}
			nodes = append(nodes, name)
			t.Run(name, func(t *testing.T) {
				deps := dependsOn(s.DependsOn)
				require.Contains(t, deps, "redis")
				require.Contains(t, deps, "etcd")
				flags := checkServeFlags(t, bin, s.Command)
				// The wiring: own name, own cluster address, the
				// services' Redis and etcd.
				require.False(t, names[flags["node"]], "node name %q twice", flags["node"])
				names[flags["node"]] = true
				host, _, ok := strings.Cut(flags["cluster-addr"], ":")
				require.True(t, ok, "--cluster-addr %q", flags["cluster-addr"])
				require.True(t, host == name || host == s.Hostname, "--cluster-addr %q must name the service %s", flags["cluster-addr"], name)
				require.Equal(t, "redis", urlHost(t, flags["redis"]), "--redis")
				require.Equal(t, "etcd", urlHost(t, flags["etcd"]), "--etcd")
			})
		}
		require.Len(t, nodes, 3, "three topicast nodes")
	})
}

// dependsOn returns the services a compose depends_on names, in its short
// (list) or long (map) form.
func dependsOn(v any) []string {
	var out []string
	switch v := v.(type) {
	case []any:
		for _, s := range v {
			out = append(out, fmt.Sprint(s))
		}
	case map[string]any:
		for s := range v {
			out = append(out, s)
		}
	}
	return out
}

func hasFlag(args []string, name, value string) bool {
	i := slices.Index(args, name)
	return i >= 0 && i+1 < len(args) && args[i+1] == value
}

func urlHost(t *testing.T, s string) string {
	t.Helper()
	u, err := url.Parse(s)
	require.NoError(t, err)
	return u.Hostname()
}

// checkServeFlags runs `topicast config check` on the serve flags args, as
// a config file (keys are serve's flag names: an unknown flag, a bad value
// or a bad combination fails it, as serve would at start), and returns the
// flags given, by name.
func checkServeFlags(t *testing.T, bin string, args []string) map[string]string {
	t.Helper()
	given := make(map[string]string)
	lists := make(map[string][]string)
	var order []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		name, ok := strings.CutPrefix(a, "--")
		if !ok {
			name, ok = strings.CutPrefix(a, "-")
		}
		require.True(t, ok, "%q in %q is not a flag", a, args)
		name, value, hasValue := strings.Cut(name, "=")
		if !hasValue {
			// serve has no boolean flag: every flag takes the next word.
			require.Less(t, i+1, len(args), "flag %s without a value", a)
			i++
			value = args[i]
		}
		if _, seen := lists[name]; !seen {
			order = append(order, name)
		}
		lists[name] = append(lists[name], value)
		given[name] = value
	}
	var file strings.Builder
	for _, name := range order {
		vals := lists[name]
		if len(vals) == 1 {
			fmt.Fprintf(&file, "%s: %s\n", name, jsonString(vals[0]))
			continue
		}
		fmt.Fprintf(&file, "%s:\n", name)
		for _, v := range vals {
			fmt.Fprintf(&file, "  - %s\n", jsonString(v))
		}
	}
	path := filepath.Join(t.TempDir(), "serve.yaml")
	require.NoError(t, os.WriteFile(path, []byte(file.String()), 0o600))
	cmd := exec.Command(bin, "config", "check", path)
	// Only the file speaks: no TOPICAST_* variable of this environment.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "topicast config check on %q:\n%s\n%s", args, file.String(), out)
	return given
}

// jsonString quotes s; a JSON string is a YAML double-quoted scalar.
func jsonString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // a string always marshals
	}
	return string(b)
}

// dockerStage is what the test reads of one FROM of a Dockerfile.
type dockerStage struct {
	from       string
	runs       []string
	user       string
	entrypoint []string
	cmd        []string
	expose     []string
}

type dockerfileInfo struct{ stages []*dockerStage }

// parseDockerfile reads the instructions the test checks: it joins
// continued lines, drops comments, and takes ENTRYPOINT and CMD in their
// exec (JSON) form only, the form that passes flags without a shell.
func parseDockerfile(t *testing.T) dockerfileInfo {
	t.Helper()
	f, err := os.Open(dockerfile)
	require.NoError(t, err)
	defer f.Close()
	var lines []string
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "#") || l == "" && cur.Len() == 0 {
			continue
		}
		if c, ok := strings.CutSuffix(l, `\`); ok {
			cur.WriteString(c + " ")
			continue
		}
		cur.WriteString(l)
		lines = append(lines, cur.String())
		cur.Reset()
	}
	require.NoError(t, sc.Err())

	var d dockerfileInfo
	for _, l := range lines {
		instr, rest, _ := strings.Cut(l, " ")
		rest = strings.TrimSpace(rest)
		instr = strings.ToUpper(instr)
		if instr == "FROM" {
			image, _, _ := strings.Cut(rest, " ")
			d.stages = append(d.stages, &dockerStage{from: image})
			continue
		}
		require.NotEmpty(t, d.stages, "%s before FROM", instr)
		s := d.stages[len(d.stages)-1]
		switch instr {
		case "RUN":
			s.runs = append(s.runs, rest)
		case "USER":
			s.user = rest
		case "EXPOSE":
			for _, p := range strings.Fields(rest) {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				s.expose = append(s.expose, p)
			}
		case "ENTRYPOINT", "CMD":
			var words []string
			require.NoError(t, json.Unmarshal([]byte(rest), &words), "%s in exec form: %s", instr, rest)
			if instr == "CMD" {
				s.cmd = words
			} else {
				s.entrypoint = words
			}
		}
	}
	return d
}
