package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/tencentyun/scf-go-lib/events"
)

// The binaries get the JSON a function URL sends: isBase64Encoded false, no requestContext.
func TestFunctionURLPayload(t *testing.T) {
	b, err := functionURLPayload(events.APIGatewayRequest{
		Method: "POST", Path: "/start", Body: `{"UserId":"u"}`,
		Headers:     map[string]string{"x-scf-remote-addr": "203.0.113.7"},
		QueryString: events.APIGatewayQueryString{"a": {"1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["isBase64Encoded"] != false || m["httpMethod"] != "POST" || m["path"] != "/start" || m["body"] != `{"UserId":"u"}` {
		t.Errorf("payload = %s", b)
	}
	if _, ok := m["requestContext"]; ok {
		t.Errorf("payload has a requestContext, which function URL events lack: %s", b)
	}
	var back events.APIGatewayRequest
	if err := json.Unmarshal(b, &back); err != nil || back.Headers["x-scf-remote-addr"] != "203.0.113.7" || back.QueryString["a"][0] != "1" {
		t.Errorf("payload does not decode back into the event (%v): %+v", err, back)
	}
}

func TestFindModuleDir(t *testing.T) {
	dir, err := findModuleDir()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "functions", "start")); err != nil {
		t.Errorf("module dir %s has no functions/start: %v", dir, err)
	}
}
