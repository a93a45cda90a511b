package httpapi

import (
	"os"
	"regexp"
	"sort"
	"strconv"
	"testing"
)

func TestCODESmdListsExactlyCodes(t *testing.T) {
	b, err := os.ReadFile("CODES.md")
	if err != nil {
		t.Fatal(err)
	}
	var doc, code []int
	for _, m := range regexp.MustCompile("(?m)^\\| `(\\d+)` \\| (\\d+) \\|").FindAllStringSubmatch(string(b), -1) {
		n, _ := strconv.Atoi(m[1])
		status, _ := strconv.Atoi(m[2])
		if n != 0 && n/10 != status {
			t.Errorf("code %d documented with HTTP %d", n, status)
		}
		doc = append(doc, n)
	}
	for _, c := range Codes {
		code = append(code, int(c))
	}
	sort.Ints(doc)
	sort.Ints(code)
	if len(doc) != len(code) {
		t.Fatalf("CODES.md %v, Codes %v", doc, code)
	}
	for i := range doc {
		if doc[i] != code[i] {
			t.Fatalf("CODES.md %v, Codes %v", doc, code)
		}
	}
}
