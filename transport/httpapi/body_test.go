package httpapi

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/topicast/topicast/sdk/wire"
)

// chunked hides a reader's length, as a chunked request body does.
type chunked struct{ io.Reader }

func TestReadBody(t *testing.T) {
	const max = 16
	cases := []struct {
		name     string
		body     io.Reader
		length   int64 // -1: unknown
		want     string
		wantCode wire.ErrorCode
	}{
		{"known length", strings.NewReader(`{"a":1}`), 7, `{"a":1}`, 0},
		{"known length at the limit", strings.NewReader(strings.Repeat("x", max)), max, strings.Repeat("x", max), 0},
		{"known length over the limit", strings.NewReader(strings.Repeat("x", max+1)), max + 1, "", wire.CodeTooLarge},
		{"empty", strings.NewReader(""), 0, "", 0},
		{"shorter than its length", strings.NewReader("abc"), 10, "", wire.CodeBadRequest},
		{"unknown length", chunked{strings.NewReader(`{"b":2}`)}, -1, `{"b":2}`, 0},
		{"unknown length over the limit", chunked{strings.NewReader(strings.Repeat("x", max+1))}, -1, "", wire.CodeTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("POST", "/v1/publish", tc.body)
			r.ContentLength = tc.length
			got, err := readBody(httptest.NewRecorder(), r, max)
			if tc.wantCode != 0 {
				var werr *wire.Error
				if !errors.As(err, &werr) || werr.Code != tc.wantCode {
					t.Fatalf("err = %v, want code %s", err, tc.wantCode)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("readBody = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
