package loadbench

import (
	"sync"
	"time"
)

// TimelinePoint is one interval of a run's timeline: what was published and
// delivered during it, as rates.
type TimelinePoint struct {
	// Seconds is the end of the interval, from the start of the publish
	// phase.
	Seconds float64 `json:"t"`
	// PublishedPerSec and DeliveriesPerSec are the rates over the interval.
	PublishedPerSec  float64 `json:"published_per_sec"`
	DeliveriesPerSec float64 `json:"deliveries_per_sec"`
}

// timelineEvery returns the sampling interval for a publish phase of d: one
// second, shorter for short runs so that a plot still has some 20 points.
func timelineEvery(d time.Duration) time.Duration {
	return min(max(d/20, 100*time.Millisecond), time.Second)
}

// timeline samples the delivered and published counts of a run from the
// start of the publish phase until stop.
type timeline struct {
	r     *run
	every time.Duration
	stopc chan struct{}
	wg    sync.WaitGroup

	// Owned by the sampling goroutine until stop returns.
	points []TimelinePoint
}

// startTimeline starts sampling r; stop ends it and returns the points.
func (r *run) startTimeline() *timeline {
	tl := &timeline{r: r, every: timelineEvery(r.cfg.Duration), stopc: make(chan struct{})}
	tl.wg.Go(tl.loop)
	return tl
}

func (tl *timeline) loop() {
	start := time.Now()
	last, lastDel, lastPub := start, tl.r.deliveredAll(), tl.r.pub.publishedTotal()
	tick := time.NewTicker(tl.every)
	defer tick.Stop()
	sample := func(now time.Time) {
		del, pub := tl.r.deliveredAll(), tl.r.pub.publishedTotal()
		if dt := now.Sub(last).Seconds(); dt > 0 {
			tl.points = append(tl.points, TimelinePoint{
				Seconds:          now.Sub(start).Seconds(),
				PublishedPerSec:  float64(pub-lastPub) / dt,
				DeliveriesPerSec: float64(del-lastDel) / dt,
			})
		}
		last, lastDel, lastPub = now, del, pub
	}
	for {
		select {
		case <-tl.stopc:
			// The last, partial interval, unless it is too short to mean much.
			if now := time.Now(); now.Sub(last) >= tl.every/4 {
				sample(now)
			}
			return
		case now := <-tick.C:
			sample(now)
		}
	}
}

// stop ends the sampling and returns the points.
func (tl *timeline) stop() []TimelinePoint {
	close(tl.stopc)
	tl.wg.Wait()
	return tl.points
}
