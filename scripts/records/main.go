// Command records exports a queue's session records to CSV, for billing and analytics: it pages
// POST /admin/records (After, Limit) from the oldest record kept (or from -after) until the
// newest, and writes one row per record with API.md's fields.
//
//	go run ./scripts/records -url http://127.0.0.1:8080 -admin-token local-admin-token > records.csv
//	go run ./scripts/records -url https://<gateway> -admin-token "$ADMIN_TOKEN" -queue game-b -o b.csv
//
// The last record's RecordId is printed on standard error: pass it as -after next time to
// export only what came since.
package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"time"
)

// record is one record as /admin/records answers it.
type record struct {
	RecordId, UserId, QueueId, Lane, JoinedAt, AdmittedAt, StartedAt, EndedAt, Reason string
	WaitedSeconds, PlayedSeconds                                                      float64
	FirstEtaSeconds                                                                   int64
}

// header is the CSV's first row.
var header = []string{"RecordId", "UserId", "QueueId", "Lane", "JoinedAt", "AdmittedAt", "StartedAt", "EndedAt",
	"Reason", "WaitedSeconds", "PlayedSeconds", "FirstEtaSeconds"}

func (r record) row() []string {
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', -1, 64) }
	eta := ""
	if r.FirstEtaSeconds > 0 {
		eta = strconv.FormatInt(r.FirstEtaSeconds, 10)
	}
	return []string{r.RecordId, r.UserId, r.QueueId, r.Lane, r.JoinedAt, r.AdmittedAt, r.StartedAt, r.EndedAt,
		r.Reason, f(r.WaitedSeconds), f(r.PlayedSeconds), eta}
}

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "base URL of the deployment (the harness, or the admin function's gateway)")
	token := flag.String("admin-token", os.Getenv("ADMIN_TOKEN"), "the ADMIN_TOKEN (default: $ADMIN_TOKEN)")
	queue := flag.String("queue", "", "QueueId (default: the deployment's first queue)")
	after := flag.String("after", "", "export the records after this RecordId (default: from the oldest kept)")
	out := flag.String("o", "", "output file (default: standard output)")
	page := flag.Int("page", 1000, "records per request, 1-1000")
	flag.Parse()
	w := io.Writer(os.Stdout)
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			fmt.Fprintln(os.Stderr, "records:", err)
			os.Exit(1)
		}
		defer f.Close()
		w = f
	}
	n, last, err := export(context.Background(), http.DefaultClient, *url, *token, *queue, *after, *page, w)
	fmt.Fprintf(os.Stderr, "records: %d exported; last RecordId %q (pass it as -after next time)\n", n, last)
	if err != nil {
		fmt.Fprintln(os.Stderr, "records:", err)
		os.Exit(1)
	}
}

// export pages the records into w as CSV and returns how many it wrote and the last id.
func export(ctx context.Context, c *http.Client, base, token, queueID, after string, page int, w io.Writer) (int, string, error) {
	cw := csv.NewWriter(w)
	defer cw.Flush()
	if err := cw.Write(header); err != nil {
		return 0, after, err
	}
	n, last := 0, after
	for {
		body := map[string]any{"Limit": page}
		if last != "" {
			body["After"] = last
		}
		if queueID != "" {
			body["QueueId"] = queueID
		}
		recs, next, err := fetch(ctx, c, base, token, body)
		if err != nil {
			return n, last, err
		}
		for _, r := range recs {
			if err := cw.Write(r.row()); err != nil {
				return n, last, err
			}
			n, last = n+1, r.RecordId
		}
		if next == "" {
			cw.Flush()
			return n, last, cw.Error()
		}
		if next == body["After"] {
			// A cursor that does not move would page the same records forever.
			cw.Flush()
			return n, last, fmt.Errorf("/admin/records answered Next %q, the cursor it was given: stopping", next)
		}
		last = next
	}
}

// fetch is one POST /admin/records.
func fetch(ctx context.Context, c *http.Client, base, token string, body map[string]any) ([]record, string, error) {
	b, _ := json.Marshal(body)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/admin/records", bytes.NewReader(b))
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	var env struct {
		Code int
		Msg  string
		Data struct {
			Records []record
			Next    string
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		return nil, "", fmt.Errorf("/admin/records answered HTTP %d without the envelope: %w", resp.StatusCode, err)
	}
	if resp.StatusCode != http.StatusOK || env.Code != 0 {
		return nil, "", errors.New("/admin/records: HTTP " + strconv.Itoa(resp.StatusCode) + " Code " + strconv.Itoa(env.Code) + ": " + env.Msg)
	}
	return env.Data.Records, env.Data.Next, nil
}
