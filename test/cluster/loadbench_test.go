package clustertest

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"testing"

	"github.com/topicast/topicast/internal/loadbench"
)

// TestLoadbenchCluster runs `topicast bench -procs 2` against a 3-node
// cluster on static seeds: subscribers spread over the nodes, publishes
// through all of them, and every delivery checked by the merged report
// (one seq order per topic cluster-wide), with each node's CPU and RSS.
func TestLoadbenchCluster(t *testing.T) {
	c := newCluster(t, clusterOpts{nodes: 3, static: true})
	c.start()
	var urls []string
	for _, n := range c.nodes {
		urls = append(urls, "-url", n.wsURL())
	}
	var stdout, stderr bytes.Buffer
	args := append([]string{"bench", "-procs", "2", "-conns", "300", "-topics", "6", "-rate", "300",
		"-duration", "2s", "-json", "-quiet"}, urls...)
	cmd := exec.Command(binary, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("bench: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	var rep loadbench.Report
	if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
		t.Fatalf("report: %v\n%s", err, stdout.String())
	}
	if !rep.OK() || rep.Procs != 2 || rep.Conns != 300 || rep.Published != 600 || rep.Expected != 600*50 ||
		rep.Delivered != rep.Expected || len(rep.Nodes) != 3 {
		t.Fatalf("report:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	}
	for i, n := range rep.Nodes {
		if n.Conns != 100 || n.Delivered != rep.Delivered/3 || n.Error != "" || n.RSSConnected <= 0 || n.CPUSeconds <= 0 {
			t.Errorf("node %d: %+v", i, n)
		}
	}
	t.Logf("report:\n%s", stdout.String())
}
