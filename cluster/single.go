package cluster

import (
	protocluster "github.com/asynkron/protoactor-go/cluster"
)

// singleProvider is the membership of a cluster of one: the node itself,
// always. It lets a lone node run the same grain code as a cluster.
type singleProvider struct{}

func (singleProvider) StartMember(c *protocluster.Cluster) error {
	host, port, err := c.ActorSystem.GetHostPort()
	if err != nil {
		return err
	}
	c.MemberList.UpdateClusterTopology(protocluster.Members{{
		Id:    c.ActorSystem.ID,
		Host:  host,
		Port:  int32(port),
		Kinds: c.GetClusterKinds(),
	}})
	return nil
}

func (singleProvider) StartClient(*protocluster.Cluster) error { return nil }

func (singleProvider) Shutdown(bool) error { return nil }
