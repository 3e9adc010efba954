package moqstats_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// Every row of the README's table of bad inputs names the tests that hold
// the library to it: each named test must exist, so the table cannot drift
// from the suite.
func TestReadmeBadInputTableNamesRealTests(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "## Untrusted input")
	if !ok {
		t.Fatal(`README.md has no "## Untrusted input" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var src strings.Builder
	// Rows about the consumer, httpstats and moqlite name tests of their packages.
	var files []string
	for _, pattern := range []string{"*_test.go", "consumer/*_test.go", "httpstats/*_test.go", "internal/*/*_test.go", "fuzz/*_test.go", "moqlite/*_test.go", "moqlite/*/*_test.go", "moqlite/internal/wire/*_test.go"} {
		matches, _ := filepath.Glob(pattern)
		files = append(files, matches...)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		src.Write(b)
	}
	rows := 0
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| ") || strings.HasPrefix(line, "| input") || strings.HasPrefix(line, "| ---") {
			continue
		}
		rows++
		names := regexp.MustCompile("`(Test[A-Za-z0-9_]+)`").FindAllStringSubmatch(line, -1)
		if len(names) == 0 {
			t.Errorf("row names no test: %s", line)
		}
		for _, n := range names {
			if !strings.Contains(src.String(), "func "+n[1]+"(t *testing.T)") {
				t.Errorf("README names %s, which no test file defines", n[1])
			}
		}
	}
	if rows < 10 {
		t.Fatalf("found %d rows in the bad-input table, want the whole table", rows)
	}
}
