// Command docgen writes the files derived from the code (see package
// docgen): README.md's configuration tables, the chart README's values
// table and the generated parts of the chart's values.schema.json. With
// -check it writes nothing and exits 1 listing the stale files.
// hack/generate.sh runs it; run `make generate` rather than this.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"playpulse.dev/tools/docgen"
)

func main() {
	check := flag.Bool("check", false, "write nothing; exit 1 when a generated file is stale")
	root := flag.String("root", ".", "repository root")
	flag.Parse()
	files, err := docgen.Files(*root)
	if err != nil {
		fmt.Fprintln(os.Stderr, "docgen:", err)
		os.Exit(1)
	}
	stale := docgen.Stale(*root, files)
	if *check {
		for _, f := range stale {
			fmt.Fprintf(os.Stderr, "docgen: %s is stale\n", f)
		}
		if len(stale) > 0 {
			os.Exit(1)
		}
		return
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(*root, f.Path), f.Data, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "docgen:", err)
			os.Exit(1)
		}
	}
	fmt.Fprintf(os.Stderr, "docgen: wrote %d files, %d changed\n", len(files), len(stale))
}
