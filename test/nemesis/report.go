package nemesis

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// reportExamples is how many violations of each kind the report shows.
const reportExamples = 5

// Report formats the checker's verdict on h in about one screen: the run,
// the publishes and deliveries, each violation kind with examples, and the
// recovery times per kind of fault.
func Report(h *History, r *Result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "== nemesis %s: history %s, membership %s, %d nodes, seed %d, %s\n", h.Name, h.Mode, h.Membership,
		len(h.Nodes), h.Seed, h.Duration.Round(100*time.Millisecond))
	var fs []string
	for i := range h.Faults {
		fs = append(fs, describeFault(&h.Faults[i]))
	}
	fmt.Fprintf(&b, "faults (%d): %s\n", len(h.Faults), strings.Join(fs, ", "))
	total := r.Publishes[OutcomeOK] + r.Publishes[OutcomeFailed] + r.Publishes[OutcomeIndeterminate]
	var via []string
	for _, v := range []string{ViaHTTPKey, ViaHTTP, ViaWS} {
		if m := r.ByVia[v]; m != nil {
			via = append(via, fmt.Sprintf("%s %d/%d/%d", v, m[OutcomeOK], m[OutcomeFailed], m[OutcomeIndeterminate]))
		}
	}
	fmt.Fprintf(&b, "publishes: %d: ok %d, failed %d, indeterminate %d (ok/failed/indeterminate by way: %s)\n", total,
		r.Publishes[OutcomeOK], r.Publishes[OutcomeFailed], r.Publishes[OutcomeIndeterminate], strings.Join(via, ", "))
	sdk := 0
	for _, s := range h.Subscribers {
		if s.SDK {
			sdk++
		}
	}
	fmt.Fprintf(&b, "deliveries: %d to %d subscribers (%d raw, %d sdk) over %d streams, %d converged; %d connections, %d error frames\n",
		r.Deliveries, len(h.Subscribers), len(h.Subscribers)-sdk, sdk, r.Streams, r.Converged, r.Connections, r.ErrorFrames)
	for _, e := range r.ErrorSamples {
		fmt.Fprintf(&b, "  error frame %s\n", e)
	}
	fmt.Fprintf(&b, "announced discontinuities: %d resets, %d recovered:false; renumbered across epochs: %d\n",
		r.Resets, r.NotRecovered, r.Renumbered)
	if r.Late > 0 {
		fmt.Fprintf(&b, "late: %d messages first delivered more than %v after their publish ended; worst %s later: %s\n",
			r.Late, LateAfter, fmtDur(r.LateMax), r.LateWorst)
	}
	var moved []string
	for _, t := range h.Topics {
		if a, ok := h.HeadsAfter[t]; ok && a != h.Heads[t] {
			moved = append(moved, fmt.Sprintf("%s %s -> %s", t, h.Heads[t], a))
		}
	}
	if len(moved) > 0 {
		fmt.Fprintf(&b, "heads that moved after the subscribers stopped (late publishes): %s\n", strings.Join(moved, ", "))
	}
	if len(h.NodeNotes) > 0 {
		var notes []string
		for _, n := range h.Nodes {
			if note, ok := h.NodeNotes[n]; ok {
				notes = append(notes, n+": "+note)
			}
		}
		fmt.Fprintf(&b, "nodes at the end: %s\n", strings.Join(notes, "; "))
	}
	for i, c := range r.Concurrent {
		if i == 3 {
			fmt.Fprintf(&b, "  ... %d more topics with concurrent epochs\n", len(r.Concurrent)-i)
			break
		}
		fmt.Fprintf(&b, "epochs acknowledged at the same time: %s\n", c)
	}
	b.WriteString("violations:\n")
	for _, k := range ViolationKinds {
		fmt.Fprintf(&b, "  %-22s %d\n", k, r.Counts[k])
		if r.Counts[k] == 0 {
			continue
		}
		for _, by := range []struct {
			what string
			m    map[string]int
		}{{"fault", r.ByFault[k]}, {"node", r.ByNode[k]}, {"topic", r.ByTopic[k]}} {
			if len(by.m) > 0 {
				fmt.Fprintf(&b, "      by %s: %s\n", by.what, breakdown(by.m, 6))
			}
		}
		ex := diverse(r.Examples[k], reportExamples)
		for _, v := range ex {
			fmt.Fprintf(&b, "    - at %s: %s\n", fmtDur(v.At), v.Detail)
		}
		if more := len(r.Examples[k]) - len(ex); more > 0 {
			fmt.Fprintf(&b, "      ... %d more examples in the history\n", more)
		}
	}
	b.WriteString("recovery (injection to the first message on each subscriber of an affected node):\n")
	for _, rc := range r.Recoveries {
		fmt.Fprintf(&b, "  %-12s faults %d, subscribers %d: %s, never %d\n", rc.Kind, rc.Faults, rc.Watched, spread(rc.Times), rc.Never)
	}
	if r.Failed() {
		var bad []string
		for _, k := range ViolationKinds {
			if r.Counts[k] > 0 {
				bad = append(bad, fmt.Sprintf("%s %d", k, r.Counts[k]))
			}
		}
		fmt.Fprintf(&b, "verdict: FAIL (%s)\n", strings.Join(bad, ", "))
	} else {
		b.WriteString("verdict: PASS\n")
	}
	return b.String()
}

// spread formats sorted durations as min/median/max.
func spread(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no time"
	}
	return fmt.Sprintf("min %s median %s max %s", fmtDur(ds[0]), fmtDur(ds[len(ds)/2]), fmtDur(ds[len(ds)-1]))
}

// breakdown formats counts, largest first, at most max of them.
func breakdown(m map[string]int, max int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return cmp.Or(cmp.Compare(m[b], m[a]), cmp.Compare(a, b)) })
	var parts []string
	for i, k := range keys {
		if i == max {
			parts = append(parts, fmt.Sprintf("%d more", len(keys)-i))
			break
		}
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// diverse picks up to n examples, one per subscriber (or topic) first.
func diverse(vs []Violation, n int) []Violation {
	var out []Violation
	seen := make(map[string]bool)
	for pass := 0; pass < 2 && len(out) < n; pass++ {
		for i, v := range vs {
			if len(out) == n {
				break
			}
			key := fmt.Sprint(v.Sub)
			if v.Sub < 0 {
				key = v.Topic
			}
			if pass == 0 && seen[key] || pass == 1 && seen[fmt.Sprint(i)] {
				continue
			}
			if pass == 0 {
				seen[key] = true
				seen[fmt.Sprint(i)] = true
				out = append(out, v)
			} else {
				out = append(out, v)
			}
		}
	}
	slices.SortStableFunc(out, func(a, b Violation) int { return cmp.Compare(a.At, b.At) })
	return out
}
