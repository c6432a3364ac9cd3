package cluster

import (
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors/actorpb"
)

func testView(members map[string]string) view {
	var v view
	for addr, id := range members {
		v.addrs = append(v.addrs, addr)
		v.ids = append(v.ids, id)
	}
	slices.Sort(v.addrs)
	slices.Sort(v.ids)
	return v
}

func TestGuardQuorum(t *testing.T) {
	three := []string{"a:1", "b:1", "c:1"}
	four := []string{"a:1", "b:1", "c:1", "d:1"}
	tests := []struct {
		name  string
		peers []string
		view  map[string]string
		want  bool
	}{
		{"all three", three, map[string]string{"a:1": "A", "b:1": "B", "c:1": "C"}, true},
		{"two of three", three, map[string]string{"b:1": "B", "c:1": "C"}, true},
		{"one of three", three, map[string]string{"a:1": "A"}, false},
		{"half of four with the smallest address", four, map[string]string{"a:1": "A", "d:1": "D"}, true},
		{"half of four without it", four, map[string]string{"b:1": "B", "c:1": "C"}, false},
		{"alone, counted", nil, map[string]string{"a:1": "A"}, true},
		{"alone, dropped", nil, map[string]string{"b:1": "B"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &guard{peers: tt.peers, self: "A"}
			require.Equal(t, tt.want, g.quorate(testView(tt.view)))
		})
	}
}

func TestGuardYields(t *testing.T) {
	peers := []string{"a:1", "b:1", "c:1"}
	tests := []struct {
		name string
		self string
		mine map[string]string
		peer *actorpb.MembershipResponse
		want bool
	}{
		{
			// Paused past failure detection: this node still counts the
			// others, which dropped it for good.
			name: "one-sided", self: "C",
			mine: map[string]string{"a:1": "A", "b:1": "B", "c:1": "C"},
			peer: &actorpb.MembershipResponse{MemberId: "A", Members: []string{"A", "B"}, Quorate: true},
			want: true,
		},
		{
			// A healed minority: it counts only itself; the majority
			// counts the two others.
			name: "minority yields", self: "C",
			mine: map[string]string{"c:1": "C"},
			peer: &actorpb.MembershipResponse{MemberId: "A", Members: []string{"A", "B"}, Quorate: true},
			want: true,
		},
		{
			name: "majority keeps", self: "A",
			mine: map[string]string{"a:1": "A", "b:1": "B"},
			peer: &actorpb.MembershipResponse{MemberId: "C", Members: []string{"C"}, Quorate: false},
			want: false,
		},
		{
			// A healed bridge: both halves kept the bridge and dropped each
			// other; exactly one of them yields, by id.
			name: "bridge, higher id yields", self: "C",
			mine: map[string]string{"a:1": "A", "c:1": "C"},
			peer: &actorpb.MembershipResponse{MemberId: "B", Members: []string{"A", "B"}, Quorate: true},
			want: true,
		},
		{
			name: "bridge, lower id keeps", self: "B",
			mine: map[string]string{"a:1": "A", "b:1": "B"},
			peer: &actorpb.MembershipResponse{MemberId: "C", Members: []string{"A", "C"}, Quorate: true},
			want: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &guard{peers: peers, self: tt.self}
			require.Equal(t, tt.want, g.yields(testView(tt.mine), tt.peer))
		})
	}
}
