package main

import (
	"fmt"
	"net/http"
)

// The request → event → response bridge is shared/httpapi's EventFromHTTP and WriteResponse:
// the function-URL form of the event (lower-case headers, the peer address in
// x-scf-remote-addr, the query, the body as text, no requestContext) and the answer written
// back as is. The harness adds only what the platform itself does around a function.

// writePlatformError answers for the platform itself (the function failed or was never
// reached), which is outside the client contract's envelope, as on SCF.
func writePlatformError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, "{\"errorCode\":%d,\"errorMessage\":%q}\n", status, msg)
}
