// Command readmegen rewrites the configuration tables in README.md from the
// services' config structs (`make docs`).
package main

import (
	"fmt"
	"os"

	"playpulse.dev/tests/docs"
)

func main() {
	path := "README.md"
	if len(os.Args) > 1 {
		path = os.Args[1]
	}
	in, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "readmegen:", err)
		os.Exit(1)
	}
	out, err := docs.Render(in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "readmegen:", err)
		os.Exit(1)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "readmegen:", err)
		os.Exit(1)
	}
}
