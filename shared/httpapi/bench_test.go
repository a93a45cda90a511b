package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/carqueue/carqueue/shared/redistest"
	"github.com/tencentyun/scf-go-lib/events"
)

// BenchmarkPoll measures one /poll of a queued user (not at the head) through the whole
// contract layer: event parsing, validation, ticket check, one queue round trip, envelope, log.
// Run with REDIS_ADDR set to measure against a real redis-server.
func BenchmarkPoll(b *testing.B) {
	be := redistest.Embedded(b)
	if real, ok := redistest.Real(b); ok {
		be = real
	}
	e := newEnv(b, be, envOpts{capacity: 1})
	for i := 0; i < 100; i++ {
		e.start(fmt.Sprintf("b%03d", i), "cs")
	}
	body, _ := json.Marshal(map[string]any{"UserId": "b050", "Ticket": e.ticket("b050")})
	ev := events.APIGatewayRequest{Method: "POST", Path: "/poll", Body: string(body),
		Headers: map[string]string{"x-scf-remote-addr": "198.51.100.7"}}
	h := e.api.Handler("poll")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		resp, _ := h(context.Background(), ev)
		if resp.StatusCode != 200 {
			b.Fatalf("status %d: %s", resp.StatusCode, resp.Body)
		}
	}
}
