package queue

import (
	"fmt"
	"strconv"
)

// Scripts answer with flat arrays of strings and integers; these helpers read them.

func replySlice(v any, min int) ([]any, error) {
	a, ok := v.([]any)
	if !ok || len(a) < min {
		return nil, fmt.Errorf("unexpected script reply %T %v", v, v)
	}
	return a, nil
}

func replyString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	default:
		return ""
	}
}

func replyInt(v any) int64 {
	switch x := v.(type) {
	case int64:
		return x
	case string:
		n, _ := strconv.ParseInt(x, 10, 64)
		return n
	default:
		return 0
	}
}

// replyStatus reads {state, position, length, serverSession, client, reason, joinID, lane}, or
// {'BadTicket'} (ErrBadTicket); hot
// paths leave out trailing empty fields (a shorter reply is cheaper to build in Lua).
func replyStatus(v any) (Status, error) {
	a, err := replySlice(v, 1)
	if err != nil {
		return Status{}, err
	}
	if len(a) > 8 {
		return Status{}, fmt.Errorf("status reply has %d items, want at most 8", len(a))
	}
	if len(a) == 1 && replyString(a[0]) == "BadTicket" {
		return Status{}, ErrBadTicket
	}
	a = append(a, make([]any, 8-len(a))...)
	st := Status{
		State:         State(replyString(a[0])),
		Position:      replyInt(a[1]),
		Length:        replyInt(a[2]),
		ServerSession: replyString(a[3]),
		Client:        decodeClient(replyString(a[4])),
		Reason:        Reason(replyString(a[5])),
		JoinID:        replyString(a[6]),
		Lane:          replyString(a[7]),
	}
	if st.Lane == "" && (st.State == StateQueued || st.State.Holds()) {
		st.Lane = DefaultLane
	}
	return st, nil
}

// replyClaims reads {user, client, token, ...} triples.
func replyClaims(v any, reattach bool) ([]Claim, error) {
	if v == nil {
		return nil, nil
	}
	a, err := replySlice(v, 0)
	if err != nil {
		return nil, err
	}
	if len(a)%3 != 0 {
		return nil, fmt.Errorf("claim reply has %d items, not triples", len(a))
	}
	out := make([]Claim, 0, len(a)/3)
	for i := 0; i < len(a); i += 3 {
		out = append(out, Claim{UserID: replyString(a[i]), Client: decodeClient(replyString(a[i+1])), Token: replyString(a[i+2]), Reattach: reattach})
	}
	return out, nil
}
