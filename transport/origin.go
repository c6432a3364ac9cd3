package transport

import (
	"net/http"
	"net/url"
	"strings"
)

// OriginPolicy decides which browser origins may open sessions and read
// CORS answers: the server's own, http(s)://localhost[:port] and
// http(s)://127.0.0.1[:port], and each listed origin. Requests without an
// Origin header (non-browser clients) are always allowed.
type OriginPolicy struct {
	allowed map[string]bool
}

// NewOriginPolicy returns a policy that also allows each of origins
// ("https://game.example.com", scheme and host[:port]).
func NewOriginPolicy(origins []string) *OriginPolicy {
	p := &OriginPolicy{allowed: make(map[string]bool)}
	for _, o := range origins {
		p.allowed[strings.TrimSuffix(strings.ToLower(o), "/")] = true
	}
	return p
}

// Allow reports whether r's Origin may connect.
func (p *OriginPolicy) Allow(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	return p.AllowOrigin(origin, r.Host)
}

// AllowOrigin reports whether origin may reach a server addressed as host.
func (p *OriginPolicy) AllowOrigin(origin, host string) bool {
	u, err := url.Parse(origin)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false
	}
	if p != nil && p.allowed[strings.ToLower(u.Scheme+"://"+u.Host)] {
		return true
	}
	if strings.EqualFold(u.Host, host) {
		return true
	}
	h := u.Hostname()
	return h == "localhost" || h == "127.0.0.1"
}
