package cluster

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors/actorpb"
)

func TestRepeatable(t *testing.T) {
	keyed := &actorpb.PublishItem{Data: []byte(`1`), Key: "k"}
	bare := &actorpb.PublishItem{Data: []byte(`1`)}
	require.True(t, repeatable(&actorpb.HistoryRequest{Topic: "t"}))
	require.True(t, repeatable(&actorpb.PublishRequest{Topic: "t", Items: []*actorpb.PublishItem{keyed, keyed}}))
	require.False(t, repeatable(&actorpb.PublishRequest{Topic: "t", Items: []*actorpb.PublishItem{keyed, bare}}))
}
