package ticket

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Grant is what a business's own backend vouches for: this UserId may enter this lane until
// Exp. API.md fixes the form: base64url(payload) + "." + base64url(HMAC-SHA256(GRANT_SECRET,
// payload)), payload the JSON {"UserId","Lane","Exp"} with Exp in Unix seconds.
type Grant struct {
	UserID string
	Lane   string // "" means the default lane
	Exp    time.Time
}

// MaxGrant bounds a grant's length: a payload of the contract's fields fits many times over.
const MaxGrant = 1024

// ErrGrant is wrapped by every grant that does not verify; the message says why without
// echoing the grant.
var ErrGrant = errors.New("grant not valid")

// Grants verifies grants with the business's secret (GRANT_SECRET).
type Grants struct{ secret []byte }

// NewGrants returns a verifier; an empty secret verifies nothing.
func NewGrants(secret string) *Grants { return &Grants{secret: []byte(secret)} }

// Verify checks g: strict base64url, the HMAC in constant time, the JSON payload, that it is
// for userID and not expired at now.
func (v *Grants) Verify(g, userID string, now time.Time) (Grant, error) {
	fail := func(why string) (Grant, error) { return Grant{}, fmt.Errorf("%w: %s", ErrGrant, why) }
	if len(v.secret) == 0 {
		return fail("this server accepts no grants (no GRANT_SECRET)")
	}
	if len(g) > MaxGrant {
		return fail(fmt.Sprintf("longer than %d characters", MaxGrant))
	}
	p64, s64, ok := strings.Cut(g, ".")
	if !ok || strings.Contains(s64, ".") {
		return fail("want base64url(payload).base64url(signature)")
	}
	payload, err1 := strict.DecodeString(p64)
	sig, err2 := strict.DecodeString(s64)
	if err1 != nil || err2 != nil || len(payload) == 0 {
		return fail("not canonical unpadded base64url")
	}
	h := hmac.New(sha256.New, v.secret)
	h.Write(payload)
	if !hmac.Equal(sig, h.Sum(nil)) {
		return fail("signature does not match")
	}
	var body struct {
		UserID *string `json:"UserId"`
		Lane   *string `json:"Lane"`
		Exp    *int64  `json:"Exp"`
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&body); err != nil || dec.More() || body.UserID == nil || body.Exp == nil {
		return fail("payload must be the JSON object {\"UserId\",\"Lane\",\"Exp\"}")
	}
	if *body.UserID != userID {
		return fail("issued for another UserId")
	}
	exp := time.Unix(*body.Exp, 0)
	if !now.Before(exp) {
		return fail("expired")
	}
	out := Grant{UserID: *body.UserID, Exp: exp}
	if body.Lane != nil {
		out.Lane = *body.Lane
	}
	return out, nil
}

// Sign makes a grant as a business backend would (tests, tools and the demo use it).
func Sign(secret string, g Grant) string {
	payload, _ := json.Marshal(struct {
		UserID string `json:"UserId"`
		Lane   string `json:"Lane"`
		Exp    int64  `json:"Exp"`
	}{g.UserID, g.Lane, g.Exp.Unix()})
	h := hmac.New(sha256.New, []byte(secret))
	h.Write(payload)
	return strict.EncodeToString(payload) + "." + strict.EncodeToString(h.Sum(nil))
}
