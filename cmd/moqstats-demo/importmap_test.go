package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// interopModules is where .ci/install-interop installs @moq/lite and its
// dependencies, pinned by the lockfile beside it.
const interopModules = "../../moqlite/interop/node_modules"

// needInteropModules returns interopModules, or skips the test when
// @moq/lite is not installed there, unless CI is set: CI installs it, so
// there it is a failure.
func needInteropModules(t *testing.T) string {
	t.Helper()
	pkg := filepath.Join(interopModules, "@moq", "lite", "package.json")
	b, err := os.ReadFile(pkg)
	if err == nil {
		var p struct{ Version string }
		if err := json.Unmarshal(b, &p); err != nil || p.Version != "0.2.2" {
			t.Fatalf("%s: version %q (%v); want 0.2.2, as moqlite/interop/package-lock.json pins: run bash .ci/install-interop", pkg, p.Version, err)
		}
		return interopModules
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set but @moq/lite is missing (%v); bash .ci/install-interop installs it", err)
	}
	t.Skipf("@moq/lite is missing (%v): run bash .ci/install-interop to run this test", err)
	return ""
}

func TestImportMapResolvesAsNode(t *testing.T) {
	dir := needInteropModules(t)
	b, err := importMap(dir, "/m/")
	if err != nil {
		t.Fatal(err)
	}
	var m struct {
		Imports map[string]string
		Scopes  map[string]map[string]string
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for spec, want := range map[string]string{
		"@moq/lite":   "/m/@moq/lite/index.js",
		"@moq/qmux":   "/m/@moq/qmux/index.js",
		"async-mutex": "/m/async-mutex/index.mjs",
	} {
		if got := m.Imports[spec]; got != want {
			t.Errorf("imports[%q] = %q; want %q", spec, got, want)
		}
	}
	// @moq/lite 0.2.2 pins an older @moq/signals in its own node_modules:
	// its modules must get that one, as Node gives them.
	if got, want := m.Scopes["/m/@moq/lite/"]["@moq/signals"], "/m/@moq/lite/node_modules/@moq/signals/index.js"; got != want {
		t.Errorf("scope /m/@moq/lite/ maps @moq/signals to %q; want %q", got, want)
	}
	for spec, file := range m.Imports {
		if strings.HasSuffix(spec, "/") {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, strings.TrimPrefix(file, "/m/"))); err != nil {
			t.Errorf("imports[%q] = %q, which is not a file: %v", spec, file, err)
		}
	}
}
