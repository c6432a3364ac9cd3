package auth

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/topicast/topicast/sdk/wire"
)

// MaxTokenLen is the longest token Verify reads, in bytes.
const MaxTokenLen = 8192

// Algorithm is the only signing algorithm accepted.
const Algorithm = "HS256"

// Claims is what a verified token grants.
type Claims struct {
	// Subject is the client's id ("sub").
	Subject string
	// Expires is when the token stops being valid ("exp").
	Expires time.Time
	// Subscribe lists the topics the client may subscribe to.
	Subscribe Patterns
	// Publish lists the topics the client may publish to.
	Publish Patterns
}

// tokenClaims is the JSON body of a token.
type tokenClaims struct {
	jwt.RegisteredClaims
	Subscribe []string `json:"subscribe,omitempty"`
	Publish   []string `json:"publish,omitempty"`
}

// Validate is called by the parser after the registered claims are checked.
func (c *tokenClaims) Validate() error {
	if c.Subject == "" {
		return errors.New("token has no sub")
	}
	for _, p := range c.Subscribe {
		if err := ValidatePattern(p); err != nil {
			return err
		}
	}
	for _, p := range c.Publish {
		if err := ValidatePattern(p); err != nil {
			return err
		}
	}
	return nil
}

// Verifier checks tokens signed with one secret. It is goroutine-safe.
type Verifier struct {
	secret []byte
	parser *jwt.Parser
}

// NewVerifier returns a verifier of HS256 tokens signed with secret. now,
// if set, tells the time (tests); nil means time.Now.
func NewVerifier(secret []byte, now func() time.Time) *Verifier {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{Algorithm}),
		jwt.WithExpirationRequired(),
	}
	if now != nil {
		opts = append(opts, jwt.WithTimeFunc(now))
	}
	return &Verifier{secret: append([]byte(nil), secret...), parser: jwt.NewParser(opts...)}
}

// Verify checks token's signature, algorithm and claims and returns what it
// grants. Errors are *wire.Error with CodeUnauthorized and a message that
// says what is wrong without echoing the token.
func (v *Verifier) Verify(token string) (*Claims, error) {
	if token == "" {
		return nil, wire.Errorf(wire.CodeUnauthorized, "a token is required")
	}
	if len(token) > MaxTokenLen {
		return nil, wire.Errorf(wire.CodeUnauthorized, "token is longer than %d bytes", MaxTokenLen)
	}
	var tc tokenClaims
	_, err := v.parser.ParseWithClaims(token, &tc, func(t *jwt.Token) (any, error) {
		return v.secret, nil
	})
	if err != nil {
		return nil, &wire.Error{Code: wire.CodeUnauthorized, Message: reason(err), Err: err}
	}
	return &Claims{
		Subject:   tc.Subject,
		Expires:   tc.ExpiresAt.Time,
		Subscribe: Patterns(tc.Subscribe),
		Publish:   Patterns(tc.Publish),
	}, nil
}

// reason turns a parser error into a short message.
func reason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "token is malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "token signature or algorithm is not valid (HS256 only)"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "token algorithm is not accepted (HS256 only)"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "token has no exp"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "token has expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "token is not valid yet"
	case errors.Is(err, jwt.ErrTokenInvalidClaims):
		// Our own Validate: its message is safe to show.
		msg := err.Error()
		if i := strings.LastIndex(msg, ": "); i >= 0 {
			msg = msg[i+2:]
		}
		return "token claims are not valid: " + msg
	default:
		return "token is not valid"
	}
}

// Sign returns an HS256 token for c, signed with secret. c.Expires must be
// set.
func Sign(secret []byte, c Claims) (string, error) {
	if len(secret) == 0 {
		return "", errors.New("topicast: auth: empty secret")
	}
	if c.Subject == "" || c.Expires.IsZero() {
		return "", errors.New("topicast: auth: a token needs a subject and an expiry")
	}
	for _, p := range append(append(Patterns(nil), c.Subscribe...), c.Publish...) {
		if err := ValidatePattern(p); err != nil {
			return "", err
		}
	}
	tc := &tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Subject:   c.Subject,
			ExpiresAt: jwt.NewNumericDate(c.Expires),
			IssuedAt:  jwt.NewNumericDate(time.Now()),
		},
		Subscribe: c.Subscribe,
		Publish:   c.Publish,
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, tc).SignedString(secret)
}

// FromRequest returns the token of an HTTP request: the token query
// parameter, or else the bearer token of the Authorization header; "" when
// there is none.
func FromRequest(r *http.Request) string {
	if t := r.URL.Query().Get("token"); t != "" {
		return t
	}
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		return strings.TrimSpace(t)
	}
	return ""
}
