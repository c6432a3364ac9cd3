package jsclient

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestHandlers(t *testing.T) {
	for _, tc := range []struct {
		h           http.Handler
		contentType string
		body        []byte
	}{
		{Handler(), "text/javascript; charset=utf-8", Source()},
		{DeclarationsHandler(), "application/typescript; charset=utf-8", Declarations()},
	} {
		rec := httptest.NewRecorder()
		tc.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
		res := rec.Result()
		body, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, res.StatusCode)
		require.Equal(t, tc.contentType, res.Header.Get("Content-Type"))
		require.Equal(t, tc.body, body)
		require.NotEmpty(t, body)
	}
	require.Contains(t, string(Declarations()), "export function connect(")
}
