// Package docgen makes the files, or the parts of files, that are derived
// from the code rather than written by hand:
//
//   - the configuration tables in README.md and docs/collector.md, from the
//     services' config structs (envconf.Markdown);
//   - the values table in charts/playpulse/README.md, from the "# -- "
//     comments in values.yaml;
//   - the generated parts of charts/playpulse/values.schema.json: the
//     variables each service takes through <service>.config, with their
//     types and ranges, and defaultStream.spec, from the PlaybackStream CRD.
//
// hack/generate.sh runs it through tools/cmd/docgen (make generate), and
// with -check for the test that fails when a generated file is stale.
package docgen

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// File is a generated file: its path relative to the repository root and
// the content it must have.
type File struct {
	Path string
	Data []byte
}

// Files renders every file docgen makes from the repository at root.
func Files(root string) ([]File, error) {
	var out []File
	for _, gen := range []struct {
		path string
		fn   func(root string, current []byte) ([]byte, error)
	}{
		{"README.md", func(_ string, cur []byte) ([]byte, error) { return ConfigTables(cur) }},
		{"docs/collector.md", func(_ string, cur []byte) ([]byte, error) { return ServiceTables(cur, "collector") }},
		{chartReadme, valuesTable},
		{schemaFile, valuesSchema},
	} {
		cur, err := os.ReadFile(filepath.Join(root, gen.path))
		if err != nil {
			return nil, err
		}
		data, err := gen.fn(root, cur)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", gen.path, err)
		}
		out = append(out, File{gen.path, data})
	}
	return out, nil
}

// Stale returns the files whose content on disk differs from f.
func Stale(root string, files []File) []string {
	var stale []string
	for _, f := range files {
		cur, err := os.ReadFile(filepath.Join(root, f.Path))
		if err != nil || !bytes.Equal(cur, f.Data) {
			stale = append(stale, f.Path)
		}
	}
	return stale
}
