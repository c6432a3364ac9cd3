package nemesis

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/topicast/topicast/internal/testutil"
)

// Flags of the long run (TestNemesisLong) and of TestRecheck.
var (
	flagCycles     = flag.Int("nemesis.cycles", 0, "nemesis cycles of TestNemesisLong (0: skip it)")
	flagSeed       = flag.Uint64("nemesis.seed", 0, "seed of the fault schedule (0: from the clock)")
	flagMode       = flag.String("nemesis.mode", ModeRedis, "topic history: redis or memory")
	flagMembership = flag.String("nemesis.membership", "static", "membership: static or etcd")
	flagNodes      = flag.Int("nemesis.nodes", 3, "nodes, 3 to 5")
	flagRate       = flag.Int("nemesis.rate", 150, "publishes per second, in total")
	flagFaults     = flag.String("nemesis.faults", "", "comma-separated fault kinds the long run draws from (default: all that apply; \"none\" for a control run)")
	flagRecheck    = flag.String("nemesis.recheck", "", "history file (JSON lines) for TestRecheck to judge again")
)

// Environment variables.
const (
	// envNetns is set in the copy of the test binary that runs inside its
	// own network namespace.
	envNetns = "TOPICAST_NEMESIS_NETNS"
	// envBinary names a topicast binary to use instead of building one.
	envBinary = "TOPICAST_NEMESIS_BINARY"
	// envBuildErr carries a failed build's message into the namespace.
	envBuildErr = "TOPICAST_NEMESIS_BUILD_ERROR"
	// envOut names the directory for the histories and logs of failed runs.
	envOut = "TOPICAST_NEMESIS_OUT"
	// envKeep, when set, saves them for passing runs too.
	envKeep = "TOPICAST_NEMESIS_KEEP"
	// envHelper makes the test binary a helper process (TestNetworkFaults).
	envHelper = "TOPICAST_NEMESIS_HELPER"
)

var (
	// binary is the topicast binary the nodes run.
	binary string
	// envProblem says why no test can have a network namespace here;
	// binaryProblem why there is no topicast binary. Empty when fine.
	envProblem    string
	binaryProblem string
)

// TestMain runs the tests inside a network namespace of their own (the
// faults are nftables rules, which must touch nothing else): unless it is
// already in one, it builds topicast, runs a copy of itself under
// unshare and exits with its code. Without root (or unshare, nft, ip) it
// runs the tests here, and the nemesis tests skip, or fail when CI is set.
func TestMain(m *testing.M) {
	if mode := os.Getenv(envHelper); mode != "" {
		os.Exit(helperMain(mode))
	}
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	if os.Getenv(envNetns) == "" {
		if envProblem = missingPrivileges(); envProblem != "" {
			return testutil.RunCheckingLeaks(m, httpClient)
		}
		return reexec()
	}
	if out, err := exec.Command("ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "nemesis: ip link set lo up: %v: %s\n", err, out)
		return 1
	}
	binary = os.Getenv(envBinary)
	if binary == "" {
		binaryProblem = "no topicast binary"
		if e := os.Getenv(envBuildErr); e != "" {
			binaryProblem += ": " + e
		}
	}
	return testutil.RunCheckingLeaks(m, httpClient)
}

// missingPrivileges says what prevents a private network namespace.
func missingPrivileges() string {
	if os.Geteuid() != 0 {
		return "the nemesis needs root (a network namespace, nftables, processes under other uids)"
	}
	for _, p := range []string{"unshare", "nft", "ip"} {
		if _, err := exec.LookPath(p); err != nil {
			return fmt.Sprintf("the nemesis needs %s (apt-get install nftables iproute2 util-linux)", p)
		}
	}
	return ""
}

// reexec builds topicast (unless envBinary names one), then runs this test
// binary again, with the same arguments, in a new network and PID
// namespace: when it ends, for whatever reason, the kernel kills every
// process it started.
func reexec() int {
	env := append(os.Environ(), envNetns+"=1")
	if os.Getenv(envBinary) == "" && needsBinary() {
		dir, err := os.MkdirTemp("", "topicast-nemesis-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "nemesis:", err)
			return 1
		}
		defer os.RemoveAll(dir)
		bin, err := buildTopicast(dir)
		if err != nil {
			env = append(env, envBuildErr+"="+err.Error())
		} else {
			env = append(env, envBinary+"="+bin)
		}
	}
	// Not /proc/self/exe: unshare would resolve it to itself.
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, "nemesis:", err)
		return 1
	}
	cmd := exec.Command("unshare", append([]string{"--net", "--pid", "--fork", "--kill-child", "--", exe}, os.Args[1:]...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &exit) && exit.ExitCode() > 0:
		return exit.ExitCode()
	default:
		fmt.Fprintln(os.Stderr, "nemesis: unshare:", err)
		return 1
	}
}

// needsBinary reports whether the tests selected (-test.run, -short,
// -nemesis.cycles) include one that runs topicast nodes.
func needsBinary() bool {
	if f := flag.Lookup("test.short"); f != nil && f.Value.String() == "true" && *flagCycles <= 0 {
		return false
	}
	pattern := ""
	if f := flag.Lookup("test.run"); f != nil {
		pattern, _, _ = strings.Cut(f.Value.String(), "/")
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return true // go test reports the pattern
	}
	return re.MatchString("TestNemesisShort") || *flagCycles > 0 && re.MatchString("TestNemesisLong")
}

// buildTopicast builds the binary into dir, readable and executable by
// the nodes' uids.
func buildTopicast(dir string) (string, error) {
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "topicast")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/topicast/topicast/cmd/topicast").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build: %w: %s", err, out)
	}
	return bin, os.Chmod(bin, 0o755)
}

// requireNetns skips the test (fails it under CI) where it cannot have
// its network namespace.
func requireNetns(t *testing.T) {
	t.Helper()
	skipOrFail(t, envProblem)
}

// requireNemesis also needs the topicast binary.
func requireNemesis(t *testing.T) {
	t.Helper()
	skipOrFail(t, envProblem)
	if binaryProblem != "" {
		t.Fatal(binaryProblem) // the tree does not build, or the test selection missed it
	}
}

func skipOrFail(t *testing.T, problem string) {
	t.Helper()
	if problem == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatal(problem)
	}
	t.Skip(problem)
}

// httpClient is for publishes and probes; every request carries its own
// deadline.
var httpClient = &http.Client{Transport: &http.Transport{
	DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
	MaxIdleConnsPerHost: 32,
	IdleConnTimeout:     30 * time.Second,
}}
