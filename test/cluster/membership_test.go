package clustertest

import (
	"context"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	tccluster "github.com/topicast/topicast/cluster"
	"github.com/topicast/topicast/internal/testutil"
)

// TestEtcdMemberAnnouncesItselfAgain checks the guard against protoactor's
// etcd provider missing a member that registers between another member's
// listing and the start of its watch: each member writes its registration
// again after joining, which every watcher sees as an event. The key's
// version counts the writes: the provider's registration and, at once, its
// keepalive's (2, both inside the window), then one per touch (2 more).
func TestEtcdMemberAnnouncesItselfAgain(t *testing.T) {
	testutil.SkipIfShort(t)
	etcd := startEtcd(t)
	c := newCluster(t, clusterOpts{nodes: 1, etcd: etcd})
	c.start()

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{etcd}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := cli.Get(ctx, tccluster.EtcdPrefix, clientv3.WithPrefix())
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) > 1 {
			t.Fatalf("%d member keys for one node", len(resp.Kvs))
		}
		if len(resp.Kvs) == 1 && resp.Kvs[0].Version >= 4 {
			if resp.Kvs[0].Lease == 0 {
				t.Fatal("the registration lost its lease")
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("member key not written again: %+v", resp.Kvs)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
