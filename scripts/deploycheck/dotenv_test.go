package main

import (
	"reflect"
	"strings"
	"testing"
)

// Values are taken literally: what is after the first '=' is the value, whatever it holds.
func TestParseDotenvLiteral(t *testing.T) {
	in := strings.Join([]string{
		"# a comment",
		"   # an indented comment",
		"",
		"   ",
		"PLAIN=value",
		`DOLLAR=pa$$word$HOME${USER}$(id)`,
		`QUOTED="quoted value"`,
		`SINGLE='single'`,
		"SPACES=  two leading, one trailing ",
		"HASH=not#a comment # really",
		"EQUALS=a=b==c",
		"EMPTY=",
		"BACKSLASH=C:\\path\\n",
		"CRLF=windows\r",
		"_UNDER_9=x",
	}, "\n") + "\n"
	d, err := parseDotenv(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"PLAIN":     "value",
		"DOLLAR":    `pa$$word$HOME${USER}$(id)`,
		"QUOTED":    `"quoted value"`,
		"SINGLE":    `'single'`,
		"SPACES":    "  two leading, one trailing ",
		"HASH":      "not#a comment # really",
		"EQUALS":    "a=b==c",
		"EMPTY":     "",
		"BACKSLASH": `C:\path\n`,
		"CRLF":      "windows",
		"_UNDER_9":  "x",
	}
	if !reflect.DeepEqual(d.values, want) {
		t.Errorf("values:\n got %q\nwant %q", d.values, want)
	}
	if got := strings.Join(d.names, ","); got != "PLAIN,DOLLAR,QUOTED,SINGLE,SPACES,HASH,EQUALS,EMPTY,BACKSLASH,CRLF,_UNDER_9" {
		t.Errorf("order %s", got)
	}
}

func TestParseDotenvNoFinalNewlineAndEmptyFile(t *testing.T) {
	d, err := parseDotenv(strings.NewReader("A=1\nB=2"))
	if err != nil || d.values["B"] != "2" || len(d.names) != 2 {
		t.Fatalf("%+v %v", d, err)
	}
	d, err = parseDotenv(strings.NewReader(""))
	if err != nil || len(d.values) != 0 {
		t.Fatalf("%+v %v", d, err)
	}
}

// Bad lines are reported with their number, all at once, never with their value.
func TestParseDotenvErrors(t *testing.T) {
	const secret = "s3cret-value-never-shown"
	in := strings.Join([]string{
		"GOOD=1",
		"just a line " + secret,          // 2: no '='
		"export TICKET_SECRET=" + secret, // 3: export
		"KEY =" + secret,                 // 4: space before '='
		" KEY=" + secret,                 // 5: leading space
		"1KEY=" + secret,                 // 6: starts with a digit
		"GOOD=" + secret,                 // 7: duplicate
		"=" + secret,                     // 8: no name
	}, "\n")
	_, err := parseDotenv(strings.NewReader(in))
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{
		"line 2: want KEY=VALUE, found no '='",
		"line 3: drop the 'export '",
		"line 4: the name before '='",
		"line 5: the name before '='",
		"line 6: the name before '='",
		"line 7: GOOD is already set on line 1",
		"line 8: the name before '='",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, secret) {
		t.Errorf("error shows a value:\n%s", msg)
	}
}
