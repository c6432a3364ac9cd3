package archtest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/topicast/topicast/"

// allowed lists, for each package of the module (by its directory), the
// packages of the module its production code may import: the one-way graph
// of README.md ("cmd → internal/server → cluster → actors → transport →
// wire; adapters import transport and wire only; sdk imports wire only").
// wire is sdk/wire, in the SDK's own module, so that the SDK needs nothing
// of the server's module; sdk, sdk/wire and sdk/js import nothing outside
// it. A package missing from the table fails the test, so a new package
// takes a place in the graph on purpose.
var allowed = map[string][]string{
	"sdk/wire":               {},
	"transport":              {"sdk/wire"},
	"transport/auth":         {"sdk/wire"},
	"transport/websocket":    {"transport", "sdk/wire"},
	"transport/webtransport": {"transport", "sdk/wire"},
	"transport/webrtc":       {"transport", "sdk/wire"},
	"transport/sse":          {"transport", "sdk/wire"},
	"transport/poll":         {"transport", "sdk/wire"},
	"transport/httpapi":      {"transport", "sdk/wire"},
	"transport/grpcapi": {"gen/topicast/v1", "gen/topicast/v1/topicastv1connect", "transport",
		"sdk/wire"},
	"gen/topicast/v1":                   {},
	"gen/topicast/v1/topicastv1connect": {"gen/topicast/v1"},
	"actors/actorpb":                    {},
	"actors":                            {"actors/actorpb", "transport", "transport/auth", "sdk/wire"},
	"cluster/redisstore":                {"actors", "actors/actorpb", "sdk/wire"},
	"cluster":                           {"actors", "actors/actorpb", "cluster/redisstore", "transport", "sdk/wire"},
	"internal/metrics":                  {"internal/tlsreload", "transport", "sdk/wire"},
	"internal/tlsreload":                {},
	"internal/loadbench":                {"sdk/wire"},
	"internal/testutil":                 {"transport", "sdk/wire"},
	"internal/archtest":                 {},
	"internal/server": {"actors", "cluster", "internal/metrics", "internal/tlsreload", "sdk/js", "transport", "transport/auth",
		"transport/grpcapi", "transport/httpapi", "transport/poll", "transport/sse", "transport/websocket",
		"transport/webrtc", "transport/webtransport", "sdk/wire"},
	"sdk":    {"sdk/wire"},
	"sdk/js": {},
	// The hot-topic benchmark's programs (scripts/hot-topic.sh): a bare
	// net/http reference, and a client load that uses the SDK only.
	"scripts/hottopic/bare":    {},
	"scripts/hottopic/pubload": {"sdk", "sdk/wire"},
}

// top marks the packages that sit on top and may import anything of the
// module: the binary and the end-to-end tests.
func top(dir string) bool {
	return dir == "cmd/topicast" || dir == "test" || strings.HasPrefix(dir, "test/")
}

// TestImportsPointOneWay parses every Go file of the module (imports only)
// and checks each import of the module's own packages against allowed.
// Tests of a package are held to the same rule, except that they may use
// internal/testutil: a test that needs a whole server belongs in test/.
func TestImportsPointOneWay(t *testing.T) {
	root := repoRoot(t)
	fset := token.NewFileSet()
	seen := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if p != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		rel, err := filepath.Rel(root, filepath.Dir(p))
		if err != nil {
			return err
		}
		dir := filepath.ToSlash(rel)
		seen[dir] = true
		if top(dir) {
			return nil
		}
		may, known := allowed[dir]
		if !known {
			t.Errorf("%s: package not in the import table of internal/archtest; give it its place in the graph", dir)
			return nil
		}
		f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		isTest := strings.HasSuffix(p, "_test.go")
		for _, imp := range f.Imports {
			ip, err := strconv.Unquote(imp.Path.Value)
			if err != nil {
				return err
			}
			if !strings.HasPrefix(ip, module) {
				continue
			}
			target := strings.TrimPrefix(ip, module)
			switch {
			case target == dir, slices.Contains(may, target):
			case isTest && target == "internal/testutil" && !strings.HasPrefix(dir, "sdk"):
			default:
				t.Errorf("%s imports %s, against the one-way graph (allowed: %v)",
					path.Join(dir, filepath.Base(p)), target, may)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for dir := range allowed {
		if !seen[dir] {
			t.Errorf("%s: in the import table but not in the tree; remove it", dir)
		}
	}
}

// repoRoot finds the directory of go.mod above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}
