package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"
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

// importMap builds a browser import map for the packages in nodeModules,
// served at prefix (a URL path ending in "/"), resolving bare specifiers
// as Node does: a package's own node_modules first, then each enclosing
// one. A package found at the top goes in "imports"; one nested in
// another's node_modules goes in that package's scope, which the browser
// prefers for the modules under it, as Node's walk up the directories
// would. Each package maps to its ES module entry (exports ".", by the
// browser, import, module or default condition; else "module" or "main"),
// its other exported subpaths likewise, and "name/" to its directory.
func importMap(nodeModules, prefix string) ([]byte, error) {
	imports := map[string]string{}
	scopes := map[string]map[string]string{}
	err := filepath.WalkDir(nodeModules, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || d.Name() != "package.json" {
			return nil
		}
		dir := filepath.ToSlash(filepath.Dir(p))
		rel := strings.TrimPrefix(strings.TrimPrefix(dir, filepath.ToSlash(nodeModules)), "/")
		// rel is a package's directory only when it ends in
		// node_modules/name or node_modules/@scope/name.
		outer, name := "", rel
		if i := strings.LastIndex(rel, "/node_modules/"); i >= 0 {
			outer, name = rel[:i], rel[i+len("/node_modules/"):]
		}
		if name == "" || strings.Count(name, "/") > 1 || (strings.Contains(name, "/") != strings.HasPrefix(name, "@")) {
			return nil // a package's inner package.json, not a package
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		var pkg struct {
			Name    string
			Module  string
			Main    string
			Exports json.RawMessage
		}
		if err := json.Unmarshal(b, &pkg); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		if pkg.Name != name {
			return nil
		}
		target := imports
		if outer != "" {
			scope := prefix + outer + "/"
			if scopes[scope] == nil {
				scopes[scope] = map[string]string{}
			}
			target = scopes[scope]
		}
		base := prefix + rel + "/"
		target[name+"/"] = base
		for sub, file := range entries(pkg.Exports, pkg.Module, pkg.Main) {
			target[path.Join(name, sub)] = base + strings.TrimPrefix(file, "./")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return json.Marshal(map[string]any{"imports": imports, "scopes": scopes})
}

// entries maps a package's subpaths ("." for the package itself) to the
// files a browser's import should load.
func entries(exports json.RawMessage, module, main string) map[string]string {
	out := map[string]string{}
	var s string
	var m map[string]json.RawMessage
	switch {
	case json.Unmarshal(exports, &s) == nil:
		out["."] = s
	case json.Unmarshal(exports, &m) == nil:
		subpaths := false
		for k := range m {
			subpaths = subpaths || strings.HasPrefix(k, ".")
		}
		if !subpaths {
			m = map[string]json.RawMessage{".": exports} // conditions only
		}
		for k, v := range m {
			if strings.Contains(k, "*") || !strings.HasPrefix(k, ".") {
				continue
			}
			if f := condition(v); f != "" && (strings.HasSuffix(f, ".js") || strings.HasSuffix(f, ".mjs")) {
				out[k] = f
			}
		}
	}
	if out["."] == "" {
		switch {
		case module != "":
			out["."] = module
		case main != "":
			out["."] = main
		default:
			out["."] = "index.js"
		}
	}
	return out
}

// condition picks a browser's file from an exports value: a string, or
// conditions tried in a browser's order, nested.
func condition(v json.RawMessage) string {
	var s string
	if json.Unmarshal(v, &s) == nil {
		return s
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(v, &m) != nil {
		return ""
	}
	for _, c := range []string{"browser", "import", "module", "default"} {
		if w, ok := m[c]; ok {
			if f := condition(w); f != "" {
				return f
			}
		}
	}
	return ""
}

// moduleFiles serves the JavaScript files under dir (nothing else), as
// JavaScript.
func moduleFiles(dir string) http.Handler {
	files := http.FileServer(http.Dir(dir))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, ".js") && !strings.HasSuffix(r.URL.Path, ".mjs") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		files.ServeHTTP(w, r)
	})
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
