package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestExportPagesUntilTheNewest: pages of 2 from a server holding 5 records give every row
// once, in order, with the header, and the last id.
func TestExportPagesUntilTheNewest(t *testing.T) {
	var calls []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" || r.URL.Path != "/admin/records" {
			w.WriteHeader(401)
			fmt.Fprint(w, `{"Code":4011,"Msg":"Authorization: want Bearer <ADMIN_TOKEN>","Data":{}}`)
			return
		}
		var body struct {
			After   string
			Limit   int
			QueueId string
		}
		_ = json.NewDecoder(r.Body).Decode(&body)
		calls = append(calls, body.After+"|"+body.QueueId)
		start := 0
		if body.After != "" {
			fmt.Sscanf(body.After, "%d-0", &start)
		}
		var recs []map[string]any
		for i := start + 1; i <= 5 && len(recs) < body.Limit; i++ {
			recs = append(recs, map[string]any{"RecordId": fmt.Sprintf("%d-0", i), "UserId": fmt.Sprintf("u%d", i),
				"QueueId": "q", "Lane": "default", "EndedAt": "2026-12-05T10:00:00Z", "Reason": "stopped", "WaitedSeconds": 1.5})
		}
		next := ""
		if len(recs) == body.Limit {
			next = recs[len(recs)-1]["RecordId"].(string)
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"Code": 0, "Msg": "OK", "Data": map[string]any{"Records": recs, "Next": next}})
	}))
	defer srv.Close()
	var out strings.Builder
	n, last, err := export(context.Background(), srv.Client(), srv.URL, "tok", "q", "", 2, &out)
	if err != nil || n != 5 || last != "5-0" {
		t.Fatalf("export: %d %q %v", n, last, err)
	}
	rows, err := csv.NewReader(strings.NewReader(out.String())).ReadAll()
	if err != nil || len(rows) != 6 || rows[0][0] != "RecordId" || rows[1][1] != "u1" || rows[5][1] != "u5" || rows[1][9] != "1.5" {
		t.Fatalf("csv %v %v", rows, err)
	}
	if strings.Join(calls, ",") != "|q,2-0|q,4-0|q" {
		t.Fatalf("requests %v", calls)
	}
	// From a cursor on, and a refused token.
	out.Reset()
	if n, _, err := export(context.Background(), srv.Client(), srv.URL, "tok", "", "4-0", 10, &out); n != 1 || err != nil {
		t.Fatalf("after 4-0: %d %v", n, err)
	}
	if _, _, err := export(context.Background(), srv.Client(), srv.URL, "bad", "", "", 10, &out); err == nil || !strings.Contains(err.Error(), "4011") {
		t.Fatalf("bad token: %v", err)
	}
}

// TestExportStopsOnACursorThatDoesNotMove: a server that answers the cursor it was given as
// Next (a bug, or a proxy replaying an answer) ends the export with an error, not a loop.
func TestExportStopsOnACursorThatDoesNotMove(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, `{"Code":0,"Msg":"OK","Data":{"Records":[],"Next":"7-0"}}`)
	}))
	defer srv.Close()
	var out strings.Builder
	n, _, err := export(context.Background(), srv.Client(), srv.URL, "tok", "", "", 10, &out)
	if n != 0 || err == nil || !strings.Contains(err.Error(), "7-0") {
		t.Fatalf("export: %d %v", n, err)
	}
}
