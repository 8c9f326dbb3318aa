package docs_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"playpulse.dev/tests/docs"
)

// TestReadmeConfigTablesAreFresh fails when a config struct changed and the
// README's tables were not regenerated with `make docs`.
func TestReadmeConfigTablesAreFresh(t *testing.T) {
	path := filepath.Join("..", "..", "README.md")
	readme, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for name := range docs.Configs {
		if !bytes.Contains(readme, []byte("<!-- config:"+name+" -->")) {
			t.Errorf("README has no config table for %s", name)
		}
	}
	want, err := docs.Render(readme)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readme, want) {
		t.Fatal("README.md config tables are stale: run `make docs`")
	}
}
