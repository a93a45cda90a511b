package httpapi

import "testing"

// BenchmarkParseFields is a poll's body read: done on every request.
func BenchmarkParseFields(b *testing.B) {
	body := []byte(`{"UserId":"user-0001234","Ticket":"eyJ1IjoidXNlci0wMDAxMjM0IiwiaiI6IjQ1MDM1OTk2MjczNzA0OTYifQ.abcdefabcdefabcdefabcdefabcdefabcdefabcdefab"}`)
	b.ReportAllocs()
	for b.Loop() {
		f, err := parseFields(body, false)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.str("UserId"); err != nil {
			b.Fatal(err)
		}
		if _, err := f.str("Ticket"); err != nil {
			b.Fatal(err)
		}
	}
}
