package web

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandlerServesPagesAndFiles(t *testing.T) {
	for _, tc := range []struct {
		path, wantType, wantBody string
	}{
		{"/", "text/html", `id="user-id"`},
		{"/dashboard", "text/html", `id="admin-token"`},
		{"/app.js", "text/javascript", "/reconnect"},
		{"/app.js", "text/javascript", "ReconnectWindowMs"},
		{"/app.css", "text/css", ":root"},
		{"/dashboard.js", "text/javascript", "/emulator/state"},
	} {
		if !Has(tc.path) {
			t.Errorf("Has(%q) = false", tc.path)
		}
		rec := httptest.NewRecorder()
		Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), tc.wantType) || !strings.Contains(rec.Body.String(), tc.wantBody) {
			t.Errorf("GET %s = %d %q, body lacks %q", tc.path, rec.Code, rec.Header().Get("Content-Type"), tc.wantBody)
		}
	}
}

func TestHandlerHidesEverythingElse(t *testing.T) {
	for _, p := range []string{"/index.html", "/dashboard.html", "/web.go", "/nope", "/../go.mod", "/start"} {
		if Has(p) {
			t.Errorf("Has(%q) = true", p)
		}
		rec := httptest.NewRecorder()
		Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		if rec.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, rec.Code)
		}
	}
}

// The pages load nothing from elsewhere: no CDN, so the demo works offline.
func TestPagesAreSelfContained(t *testing.T) {
	for _, f := range []string{"index.html", "dashboard.html", "app.js", "dashboard.js", "app.css"} {
		b, err := files.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, bad := range []string{"http://", "https://", "//cdn"} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s refers to %s…: the pages must work offline", f, bad)
			}
		}
	}
}
