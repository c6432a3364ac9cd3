package test

import (
	"bytes"
	"cmp"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	verrors "github.com/pb33f/libopenapi-validator/errors"
	pionwebrtc "github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"github.com/topicast/topicast/actors"
	"github.com/topicast/topicast/cluster"
	"github.com/topicast/topicast/internal/server"
)

// docs/openapi.yaml is a valid OpenAPI 3.1 document, and the server's real
// answers (and the requests that got them) match it: every endpoint, its
// successes and its errors. A change of an answer's shape fails here until
// the document says it.
func TestOpenAPIDocumentMatchesTheServer(t *testing.T) {
	spec, err := os.ReadFile("../docs/openapi.yaml")
	require.NoError(t, err)
	doc, err := libopenapi.NewDocument(spec)
	require.NoError(t, err)
	v, errs := validator.NewValidator(doc)
	require.Empty(t, errs)
	ok, verrs := v.ValidateDocument()
	require.True(t, ok, "docs/openapi.yaml: %v", verrs)

	const key = "doc-key"
	srv := startServer(t, server.Config{StatsInterval: -1, PublishRate: -1, APIKeys: []string{key}, WebRTCUDPAddr: "127.0.0.1:0",
		Node: cluster.Config{MaxMessage: 1024, Topic: actors.TopicConfig{
			Namespaces: actors.Namespaces{{Pattern: "room.*", Presence: true, JoinLeave: true}}}}})
	base := "http://" + srv.Addr()
	big := `"` + strings.Repeat("x", 2000) + `"`
	status, body := post(t, srv, `{"topic":"doc.a","data":{"n":1}}`, "Authorization", "Bearer "+key)
	require.Equal(t, http.StatusOK, status, "%s", body)
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	offer := webrtcOffer(t)

	covered := make(map[string]bool)
	// invalid marks a request the document itself refuses (the server
	// must refuse it too); the others must be valid requests. POSTs carry
	// the API key unless noKey.
	for _, tc := range []struct {
		method, path, body string
		status             int
		invalid            bool
		noKey              bool
		contentType        string // "": application/json
	}{
		{"POST", "/v1/publish", `{"topic":"doc.a","data":{"n":2},"key":"k1"}`, 200, false, false, ""},
		{"POST", "/v1/publish", `{"messages":[{"topic":"doc.a","data":3},{"topic":"doc.b","data":[4]}]}`, 200, false, false, ""},
		{"POST", "/v1/publish", `{"topic":"doc a","data":1}`, 400, true, false, ""},
		{"POST", "/v1/publish", `{"topic":"sys:x","data":1}`, 403, false, false, ""},
		{"POST", "/v1/publish", `{"topic":"doc.a","data":` + big + `}`, 413, false, false, ""},
		{"POST", "/v1/publish", `{"topic":"doc.a","data":1}`, 401, false, true, ""},
		{"GET", "/v1/history?topic=doc.a&since=0&limit=10", "", 200, false, false, ""},
		{"GET", "/v1/history?topic=doc.a&since=x", "", 400, true, false, ""},
		{"GET", "/v1/presence?topic=room.1", "", 200, false, false, ""},
		{"GET", "/v1/presence?topic=doc.a", "", 400, false, false, ""},
		{"GET", "/v1/poll?topic=doc.a&topic=doc.b&timeout=0", "", 200, false, false, ""},
		{"GET", "/v1/poll?cursor=garbage&topic=doc.a&timeout=0", "", 400, false, false, ""},
		{"GET", "/v1/sse?topic=doc.a&mode=all", "", 400, true, false, ""},
		{"GET", "/v1/info", "", 200, false, false, ""},
		{"POST", "/v1/webrtc", offer, 201, false, true, "application/sdp"},
		{"POST", "/v1/webrtc", "hello", 400, false, true, "application/sdp"},
		{"POST", "/v1/webrtc", offer + strings.Repeat("a=x:"+strings.Repeat("p", 100)+"\r\n", 700), 413, false, true, "application/sdp"},
		{"GET", "/healthz", "", 200, false, false, ""},
		{"GET", "/readyz", "", 200, false, false, ""},
		{"GET", "/metrics", "", 200, false, false, ""},
		{"GET", "/topicast.js", "", 200, false, false, ""},
		{"GET", "/topicast.d.ts", "", 200, false, false, ""},
		{"GET", "/", "", 200, false, false, ""},
		{"GET", "/ws", "", 400, false, false, ""},
		// The gRPC API in the Connect protocol's JSON form.
		{"POST", "/topicast.v1.Publisher/Publish", `{"topic":"doc.g","data":"` + b64(`{"n":1}`) + `","key":"g1"}`, 200, false, false, ""},
		{"POST", "/topicast.v1.Publisher/Publish", `{"topic":"doc.g","data":"` + b64(`1`) + `"}`, 401, false, true, ""},
		{"POST", "/topicast.v1.Publisher/Publish", `{"topic":"sys:g","data":"` + b64(`1`) + `"}`, 403, false, false, ""},
		{"POST", "/topicast.v1.Publisher/Publish", `{"topic":"doc g","data":"` + b64(`1`) + `"}`, 400, true, false, ""},
		{"POST", "/topicast.v1.Publisher/Publish", `{"topic":"doc.g","data":"` + b64(`{`) + `"}`, 400, false, false, ""},
		{"POST", "/topicast.v1.Publisher/PublishBatch", `{"messages":[{"topic":"doc.g","data":"` + b64(`2`) + `"},{"topic":"doc.h","data":"` + b64(`[3]`) + `"}]}`, 200, false, false, ""},
		{"POST", "/topicast.v1.Publisher/History", `{"topic":"doc.g","since":"0","limit":10}`, 200, false, false, ""},
		{"POST", "/topicast.v1.Publisher/History", `{"topic":"doc.never"}`, 200, false, false, ""},
	} {
		covered[strings.SplitN(tc.path, "?", 2)[0]] = true
		t.Run(fmt.Sprintf("%s %s %d", tc.method, tc.path, tc.status), func(t *testing.T) {
			req, err := http.NewRequest(tc.method, base+tc.path, strings.NewReader(tc.body))
			require.NoError(t, err)
			if tc.body != "" {
				req.Header.Set("Content-Type", cmp.Or(tc.contentType, "application/json"))
			}
			if tc.method == http.MethodPost && !tc.noKey {
				req.Header.Set("Authorization", "Bearer "+key)
			}
			resp, err := httpClient.Do(req)
			require.NoError(t, err)
			body, err := io.ReadAll(resp.Body)
			require.NoError(t, err)
			resp.Body.Close()
			require.Equal(t, tc.status, resp.StatusCode, "%s", body)
			// The validators read the bodies: give them fresh readers.
			req.Body = io.NopCloser(strings.NewReader(tc.body))
			resp.Body = io.NopCloser(bytes.NewReader(body))
			ok, errs := v.ValidateHttpResponse(req, resp)
			require.True(t, ok, "answer to %s %s -> %d %.300s: %s", tc.method, tc.path, tc.status, body, describe(errs))
			req.Body = io.NopCloser(strings.NewReader(tc.body))
			ok, errs = v.ValidateHttpRequest(req)
			require.Equal(t, !tc.invalid, ok, "request %s %s: %s", tc.method, tc.path, describe(errs))
		})
	}

	// Every path of the document got a real answer above.
	model, err := doc.BuildV3Model()
	require.NoError(t, err)
	for pair := model.Model.Paths.PathItems.First(); pair != nil; pair = pair.Next() {
		require.True(t, covered[pair.Key()], "%s is in docs/openapi.yaml but no request of this test checks it", pair.Key())
	}
}

// describe lists validation errors with their reasons.
func describe(errs []*verrors.ValidationError) string {
	var b strings.Builder
	for _, e := range errs {
		fmt.Fprintf(&b, "\n  - %s", e.Error())
		for _, se := range e.SchemaValidationErrors {
			fmt.Fprintf(&b, "\n      %s: %s", se.KeywordLocation, se.Reason)
		}
	}
	return b.String()
}

// webrtcOffer returns an SDP offer as a WebRTC client sends it: the
// "topicast" data channel, ICE gathering complete.
func webrtcOffer(t *testing.T) string {
	t.Helper()
	pc, err := pionwebrtc.NewPeerConnection(pionwebrtc.Configuration{})
	require.NoError(t, err)
	t.Cleanup(func() { _ = pc.Close() })
	_, err = pc.CreateDataChannel("topicast", nil)
	require.NoError(t, err)
	offer, err := pc.CreateOffer(nil)
	require.NoError(t, err)
	gathered := pionwebrtc.GatheringCompletePromise(pc)
	require.NoError(t, pc.SetLocalDescription(offer))
	<-gathered
	return pc.LocalDescription().SDP
}
