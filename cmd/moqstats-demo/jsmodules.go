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
)

// The dashboard's moq-lite source runs @moq/lite in the browser, from the
// packages .ci/install-interop installs (moqlite/interop/node_modules,
// pinned by its lockfile): the demo serves their JavaScript files under
// /js/ and the page an import map naming them, so there is no bundler and
// no build step, and the page loads nothing from beyond the demo.

// moduleDirs are where the demo looks for those packages when -moq-js is
// not given: from the repository's root (make demo), then from
// cmd/moqstats-demo (go run ., go test).
var moduleDirs = []string{"moqlite/interop/node_modules", "../../moqlite/interop/node_modules"}

// jsModules are the installed packages the page may import.
type jsModules struct {
	dir       string
	importMap []byte // for the packages served at /js/
}

// loadModules reads dir's packages, or returns nil, nil when dir is "".
func loadModules(dir string) (*jsModules, error) {
	if dir == "" {
		return nil, nil
	}
	if _, err := os.Stat(filepath.Join(dir, "@moq", "lite", "package.json")); err != nil {
		return nil, fmt.Errorf("@moq/lite is not installed in %s: %w", dir, err)
	}
	im, err := importMap(dir, "/js/")
	if err != nil {
		return nil, err
	}
	return &jsModules{dir: dir, importMap: im}, nil
}

// findModules returns the first of dirs holding @moq/lite, or "".
func findModules(dirs ...string) string {
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "@moq", "lite", "package.json")); err == nil {
			return d
		}
	}
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
