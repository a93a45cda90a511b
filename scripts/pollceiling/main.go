// Command pollceiling is the ceiling pollload is compared against in the same run: a minimal
// net/http server that answers /start with the next Position and /poll with the Position of
// its UserId (an in-memory map), in carqueue's JSON envelope, with no Redis, log or ticket.
//
//	go run ./scripts/pollceiling -addr 127.0.0.1:18095 &
//	go run ./scripts/pollload -url http://127.0.0.1:18095 -hold=false -users 10000 -pids $!
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"strconv"
	"sync"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18095", "listen address")
	flag.Parse()
	var mu sync.RWMutex
	pos := map[string]int64{}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		var in struct{ UserId string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		mu.RLock()
		p, ok := pos[in.UserId]
		mu.RUnlock()
		if !ok {
			mu.Lock()
			if p, ok = pos[in.UserId]; !ok {
				p = int64(len(pos) + 1)
				pos[in.UserId] = p
			}
			mu.Unlock()
		}
		b := []byte(`{"Code":0,"Msg":"OK","RequestId":"r","Data":{"Status":"Queued","Ticket":"t","Position":` +
			strconv.FormatInt(p, 10) + `,"QueueLength":` + strconv.Itoa(len(pos)) + `,"NextPollMs":5000}}`)
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Access-Control-Allow-Origin"] = []string{"*"}
		h["Content-Length"] = []string{strconv.Itoa(len(b))}
		_, _ = w.Write(b)
	})
	log.Fatal(http.ListenAndServe(*addr, nil))
}
