package cluster

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	protocluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/stretchr/testify/require"
)

// addrSets are member address sets as deployments make them: ports in a
// row on one host, hosts in a row on one port, random-looking ports.
func addrSets(n int) map[string][]string {
	sets := map[string][]string{}
	for i := range n {
		sets["ports in a row"] = append(sets["ports in a row"], fmt.Sprintf("127.0.0.1:%d", 8090+i))
		sets["hosts in a row"] = append(sets["hosts in a row"], fmt.Sprintf("10.0.0.%d:8090", 11+i))
		sets["scattered ports"] = append(sets["scattered ports"], fmt.Sprintf("127.0.0.1:%d", 34000+i*7919%20000))
	}
	return sets
}

func TestPlacementBalance(t *testing.T) {
	const topics = 10000
	for _, members := range []int{3, 5} {
		for name, addrs := range addrSets(members) {
			t.Run(fmt.Sprintf("%d members/%s", members, name), func(t *testing.T) {
				p := newPlacement(addrs)
				counts := map[string]int{}
				for i := range topics {
					counts[p.owner(fmt.Sprintf("topic.%d", i))]++
				}
				require.Len(t, counts, members)
				busiest := 0
				for _, c := range counts {
					busiest = max(busiest, c)
				}
				avg := float64(topics) / float64(members)
				ratio := float64(busiest) / avg
				t.Logf("busiest member owns %d topics, %.3fx the average %.0f", busiest, ratio, avg)
				require.LessOrEqual(t, ratio, 1.1)
			})
		}
	}
}

// A member joining takes topics only for itself; one leaving gives only its
// own away.
func TestPlacementMovesOnlyWhatItMust(t *testing.T) {
	addrs := addrSets(4)["ports in a row"]
	three, four := newPlacement(addrs[:3]), newPlacement(addrs)
	moved := 0
	for i := range 10000 {
		id := fmt.Sprintf("topic.%d", i)
		before, after := three.owner(id), four.owner(id)
		if before != after {
			require.Equal(t, addrs[3], after, "%s moved between old members", id)
			moved++
		}
	}
	require.InDelta(t, 2500, moved, 250, "a quarter of the topics move to the fourth member")
	require.Equal(t, "", newPlacement(nil).owner("x"))
	require.Equal(t, TopicOwner(addrs, "x"), four.owner("x"))
}

func topology(hash uint64, addrs ...string) *protocluster.ClusterTopology {
	t := &protocluster.ClusterTopology{TopologyHash: hash}
	for i, a := range addrs {
		var port int
		var host string
		fmt.Sscanf(a, "127.0.0.1:%d", &port)
		host = "127.0.0.1"
		t.Members = append(t.Members, &protocluster.Member{Id: fmt.Sprintf("m%d", i), Host: host, Port: int32(port), Kinds: []string{TopicKind}})
	}
	return t
}

// Get runs against topology changes without a data race (run with -race),
// and once the membership is back to this node alone every topic resolves
// to a local activation and the cache keeps nothing of the other members.
func TestLookupConcurrentGetAndTopologyChanges(t *testing.T) {
	n, err := New(Config{RequestTimeout: 300 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, n.Start(context.Background()))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = n.Close(ctx) // the test is about the lookup
	})
	l := n.lookup
	self := n.system.Address()
	// Members that do not exist: topics they own do not resolve in time.
	ghost1, ghost2 := "127.0.0.1:1", "127.0.0.1:2"

	var wg sync.WaitGroup
	stop := make(chan struct{})
	for g := range 6 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id := fmt.Sprintf("t%d", (g*131+i)%200)
				if pid, err := l.get(id, TopicKind, 100*time.Millisecond); err == nil {
					require.NotNil(t, pid)
					if i%7 == 0 {
						l.forget(id, TopicKind, pid)
					}
				}
				_ = l.owner(id)
				_, _ = l.cached(id, TopicKind)
			}
		})
	}
	for i := range 40 {
		switch i % 3 {
		case 0:
			l.onTopology(topology(uint64(i), self, ghost1))
		case 1:
			l.onTopology(topology(uint64(i), self, ghost1, ghost2))
		case 2:
			l.onTopology(topology(uint64(i), self))
		}
		time.Sleep(5 * time.Millisecond)
	}
	l.onTopology(topology(1000, self))
	close(stop)
	wg.Wait()

	for i := range 200 {
		id := fmt.Sprintf("t%d", i)
		pid, err := l.get(id, TopicKind, time.Second)
		require.NoError(t, err, id)
		require.Equal(t, self, pid.Address)
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	for key, e := range l.cache {
		require.Equal(t, self, e.pid.Address, key)
	}
}

func TestActivationIdentity(t *testing.T) {
	require.Equal(t, "game.1/x", activationIdentity(ActivatorName+"/game.1/x$1f"))
	require.Equal(t, "", activationIdentity("other/x$1"))
}
