package loadbench

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"strings"
)

// Plot geometry, in SVG user units.
const (
	plotW      = 960
	plotH      = 760
	plotLeft   = 80
	plotRight  = 880
	histTop    = 90
	histBottom = 370
	rateTop    = 450
	rateBottom = 700
	histBins   = 80
)

// WritePlot writes the report as a self-contained SVG image: the delivery
// latency histogram on a log scale with its percentiles, and the publish and
// delivery rates over the run (Timeline).
func (r *Report) WritePlot(w io.Writer) error {
	bw := bufio.NewWriter(w)
	p := &svg{w: bw}
	p.f(`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="system-ui, sans-serif" font-size="12">`+"\n",
		plotW, plotH, plotW, plotH)
	p.f(`<rect width="100%%" height="100%%" fill="#fff"/>` + "\n")
	verdict, color := "invariants OK", "#1a7f37"
	if !r.OK() {
		verdict, color = "invariants FAILED", "#b42318"
	}
	p.text(plotLeft, 30, "start", 18, "#1d2330", "bold",
		fmt.Sprintf("topicast bench: %d conns, %d topics, %s published/s, %s deliveries/s",
			r.Conns, r.Topics, compact(r.PublishedPerSec), compact(r.DeliveriesPerSec)))
	p.text(plotLeft, 52, "start", 13, "#5a6272", "",
		fmt.Sprintf("delivered %d of %d expected over %.1f s, lost %d, gaps %d, duplicates %d, out of order %d",
			r.Delivered, r.Expected, r.Seconds, r.Lost, r.Gaps, r.Duplicates, r.OutOfOrder))
	p.text(plotRight, 52, "end", 13, color, "bold", verdict)
	r.plotLatency(p)
	r.plotRates(p)
	p.f("</svg>\n")
	if p.err != nil {
		return p.err
	}
	return bw.Flush()
}

// plotLatency draws the latency histogram: the share of deliveries per
// log-spaced bin, from the fastest delivery to the slowest.
func (r *Report) plotLatency(p *svg) {
	p.text(plotLeft, histTop-14, "start", 14, "#1d2330", "bold", "Delivery latency (ms, log scale): share of deliveries")
	var buckets []Bucket
	if r.Latency != nil {
		buckets = r.Latency.Buckets()
	}
	var total uint64
	for _, b := range buckets {
		total += b.Count
	}
	if total == 0 {
		p.frame(histTop, histBottom)
		p.text((plotLeft+plotRight)/2, (histTop+histBottom)/2, "middle", 14, "#5a6272", "", "no deliveries")
		return
	}
	lo := math.Max(buckets[0].UpperMs, 0.001)
	hi := math.Max(buckets[len(buckets)-1].UpperMs, r.Max)
	// Whole 1-2-5 steps around the data, at least one decade wide.
	lo, hi = niceLogFloor(lo), niceLogCeil(hi)
	if hi/lo < 10 {
		hi = lo * 10
	}
	llo, lhi := math.Log10(lo), math.Log10(hi)
	x := func(ms float64) float64 {
		v := (math.Log10(math.Max(ms, lo)) - llo) / (lhi - llo)
		return plotLeft + math.Min(math.Max(v, 0), 1)*(plotRight-plotLeft)
	}
	var bins [histBins]uint64
	for _, b := range buckets {
		i := int((math.Log10(math.Max(b.UpperMs, lo)) - llo) / (lhi - llo) * histBins)
		bins[min(max(i, 0), histBins-1)] += b.Count
	}
	var most uint64
	for _, n := range bins {
		most = max(most, n)
	}
	yMax := niceCeil(float64(most) / float64(total) * 100)
	y := func(pct float64) float64 { return histBottom - pct/yMax*(histBottom-histTop) }
	p.frame(histTop, histBottom)
	for _, t := range linearTicks(yMax) {
		p.hline(y(t), "#e1e5eb")
		p.text(plotLeft-6, y(t)+4, "end", 11, "#5a6272", "", trimFloat(t)+"%")
	}
	for _, t := range logTicks(lo, hi) {
		p.vline(x(t), histTop, histBottom, "#eef0f3")
		p.text(x(t), histBottom+16, "middle", 11, "#5a6272", "", trimFloat(t))
	}
	bw := float64(plotRight-plotLeft) / histBins
	for i, n := range bins {
		if n == 0 {
			continue
		}
		h := float64(n) / float64(total) * 100
		p.f(`<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="#2f6fed"/>`+"\n",
			plotLeft+float64(i)*bw+0.5, y(h), math.Max(bw-1, 0.5), float64(histBottom)-y(h))
	}
	for i, q := range []struct {
		name string
		ms   float64
		c    string
	}{{"p50", r.P50, "#1a7f37"}, {"p99", r.P99, "#d9480f"}, {"p99.9", r.P999, "#b42318"}, {"max", r.Max, "#5a6272"}} {
		if q.ms <= 0 {
			continue
		}
		xv := x(q.ms)
		p.f(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s" stroke-width="1.5" stroke-dasharray="4 3"/>`+"\n",
			xv, histTop, xv, histBottom, q.c)
		p.text(xv+4, float64(histTop+14+14*i), "start", 11, q.c, "bold", fmt.Sprintf("%s %s ms", q.name, trimFloat(round3(q.ms))))
	}
}

// plotRates draws deliveries/s (left axis) and published/s (right axis)
// over the run.
func (r *Report) plotRates(p *svg) {
	p.text(plotLeft, rateTop-14, "start", 14, "#1d2330", "bold", "Rates over the run (s from the start of publishing)")
	p.frame(rateTop, rateBottom)
	pts := r.Timeline
	if len(pts) == 0 {
		p.text((plotLeft+plotRight)/2, (rateTop+rateBottom)/2, "middle", 14, "#5a6272", "", "no timeline")
		return
	}
	tMax, dMax, pMax := 0.0, 0.0, 0.0
	for _, pt := range pts {
		tMax = math.Max(tMax, pt.Seconds)
		dMax = math.Max(dMax, pt.DeliveriesPerSec)
		pMax = math.Max(pMax, pt.PublishedPerSec)
	}
	tMax, dMax, pMax = niceMax(tMax), niceMax(dMax*1.05), niceMax(pMax*1.05)
	x := func(s float64) float64 { return plotLeft + s/tMax*(plotRight-plotLeft) }
	yd := func(v float64) float64 { return rateBottom - v/dMax*(rateBottom-rateTop) }
	yp := func(v float64) float64 { return rateBottom - v/pMax*(rateBottom-rateTop) }
	for _, t := range linearTicks(dMax) {
		p.hline(yd(t), "#e1e5eb")
		p.text(plotLeft-6, yd(t)+4, "end", 11, "#1a7f37", "", compact(t))
	}
	for _, t := range linearTicks(pMax) {
		p.text(plotRight+6, yp(t)+4, "start", 11, "#7048e8", "", compact(t))
	}
	for _, t := range linearTicks(tMax) {
		p.vline(x(t), rateTop, rateBottom, "#eef0f3")
		p.text(x(t), rateBottom+16, "middle", 11, "#5a6272", "", trimFloat(t))
	}
	line := func(y func(float64) float64, v func(TimelinePoint) float64, color, dash string) {
		var b strings.Builder
		fmt.Fprintf(&b, "%.1f,%.1f", x(0), y(0))
		for _, pt := range pts {
			fmt.Fprintf(&b, " %.1f,%.1f", x(pt.Seconds), y(v(pt)))
		}
		p.f(`<polyline fill="none" stroke="%s" stroke-width="2" stroke-linejoin="round" stroke-dasharray="%s" points="%s"/>`+"\n",
			color, dash, b.String())
	}
	line(yd, func(pt TimelinePoint) float64 { return pt.DeliveriesPerSec }, "#1a7f37", "none")
	line(yp, func(pt TimelinePoint) float64 { return pt.PublishedPerSec }, "#7048e8", "6 4")
	p.f(`<rect x="%d" y="%d" width="12" height="3" fill="#1a7f37"/>`+"\n", plotLeft, rateBottom+34)
	p.text(plotLeft+18, rateBottom+39, "start", 12, "#1d2330", "", "deliveries/s (left axis)")
	p.f(`<rect x="%d" y="%d" width="12" height="3" fill="#7048e8"/>`+"\n", plotLeft+200, rateBottom+34)
	p.text(plotLeft+218, rateBottom+39, "start", 12, "#1d2330", "", "published/s (right axis)")
}

// svg writes SVG elements and keeps the first write error.
type svg struct {
	w   io.Writer
	err error
}

func (p *svg) f(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

func (p *svg) text(x, y float64, anchor string, size int, color, weight, s string) {
	if weight != "" {
		weight = ` font-weight="` + weight + `"`
	}
	p.f(`<text x="%.1f" y="%.1f" text-anchor="%s" font-size="%d" fill="%s"%s>%s</text>`+"\n",
		x, y, anchor, size, color, weight, html.EscapeString(s))
}

func (p *svg) frame(top, bottom int) {
	p.f(`<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#c5cad3"/>`+"\n",
		plotLeft, top, plotRight-plotLeft, bottom-top)
}

func (p *svg) hline(y float64, color string) {
	p.f(`<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", plotLeft, y, plotRight, y, color)
}

func (p *svg) vline(x float64, top, bottom int, color string) {
	p.f(`<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="%s"/>`+"\n", x, top, x, bottom, color)
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten (1 for v <= 0).
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*e >= v*(1-1e-9) {
			return m * e
		}
	}
	return 10 * e
}

// niceLogFloor and niceLogCeil round to 1, 2 or 5 times a power of ten.
func niceLogFloor(v float64) float64 {
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{5, 2, 1} {
		if m*e <= v*(1+1e-9) {
			return m * e
		}
	}
	return e
}

func niceLogCeil(v float64) float64 { return niceCeil(v) }

// niceMax rounds v up to a whole number of linearTicks steps.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	step := niceCeil(v / 5)
	return math.Ceil(v/step*(1-1e-9)) * step
}

// linearTicks returns about five round ticks from 0 to max (a niceMax or
// niceCeil value).
func linearTicks(max float64) []float64 {
	step := niceCeil(max / 5)
	var out []float64
	for t := 0.0; t <= max*(1+1e-9); t += step {
		out = append(out, t)
	}
	return out
}

// logTicks returns the 1, 2 and 5 multiples of powers of ten within [lo, hi].
func logTicks(lo, hi float64) []float64 {
	var out []float64
	for e := math.Floor(math.Log10(lo)); e <= math.Ceil(math.Log10(hi)); e++ {
		for _, m := range []float64{1, 2, 5} {
			t := m * math.Pow(10, e)
			if t >= lo*(1-1e-9) && t <= hi*(1+1e-9) {
				out = append(out, t)
			}
		}
	}
	return out
}

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

// trimFloat formats v without trailing zeros (0.5, 20, 0.001).
func trimFloat(v float64) string {
	return strconv.FormatFloat(round3(v), 'f', -1, 64)
}

// compact formats a count or rate for a label: 950, 12.5k, 3.2M.
func compact(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return trimFloat(math.Round(v/1e5)/10) + "M"
	case a >= 1e4:
		return trimFloat(math.Round(v/1e2)/10) + "k"
	default:
		return trimFloat(math.Round(v*10) / 10)
	}
}
