package main

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"strconv"
	"testing"
)

// TestUncleanPathsInEnvelope: paths ServeMux would redirect (//start, /a/../start) reach the
// functions' own routing, so the answer is the contract's JSON with CORS, never a 307.
func TestUncleanPathsInEnvelope(t *testing.T) {
	h := startLocal(t, nil)
	body := `{"UserId":"u` + randomHex(4) + `","ClientSession":"cs"}`
	for _, c := range []struct {
		target string
		status int
	}{{"//start", 200}, {"/a/../start", 200}, {"//nope", 404}, {"/a/../../x", 404}} {
		conn, err := net.Dial("tcp", h.HTTP)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = conn.Write([]byte("POST " + c.target + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
			strconv.Itoa(len(body)) + "\r\nConnection: close\r\n\r\n" + body))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		var env envelope
		err = json.NewDecoder(resp.Body).Decode(&env)
		resp.Body.Close()
		conn.Close()
		if err != nil || resp.StatusCode != c.status || resp.Header.Get("Access-Control-Allow-Origin") != "*" ||
			resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("POST %s: %d %v err %v", c.target, resp.StatusCode, resp.Header, err)
		}
	}
}
