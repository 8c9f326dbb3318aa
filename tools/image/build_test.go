package image

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

// writeContext writes files (name → content) into a new build context.
func writeContext(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestBuild replays a two-stage Dockerfile: the build stage runs on the
// host with its ARGs and the files .dockerignore lets through; the scratch
// stage becomes an image with exactly its files, user, entrypoint and
// labels.
func TestBuild(t *testing.T) {
	dir := writeContext(t, map[string]string{
		".dockerignore": "secret.txt\n",
		"secret.txt":    "not for the image\n",
		"src/hello.txt": "hello\n",
		"Dockerfile": `FROM busybox:1.37.0 AS build
WORKDIR /src
COPY src/ ./
ARG GREETING=hi
RUN printf '%s\n' "$GREETING" > /out/greeting && cat hello.txt > /out/hello && ls > /out/listing
FROM scratch
ARG GREETING=hi
ARG NONE
LABEL org.example.greeting="${GREETING}" org.example.none="${NONE}"
COPY --from=build /out/greeting /greeting
COPY --from=build /out/hello /out/listing /etc/
USER 65532:65532
ENTRYPOINT ["/greeting"]
`,
	})
	b, err := Build(context.Background(), Options{Dockerfile: filepath.Join(dir, "Dockerfile"), Context: dir, BuildArgs: map[string]string{"GREETING": "hey"}})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := b.Image.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" || !slices.Equal(cf.Config.Entrypoint, []string{"/greeting"}) || cf.OS != "linux" {
		t.Errorf("config: user %q entrypoint %q os %q", cf.Config.User, cf.Config.Entrypoint, cf.OS)
	}
	if cf.Config.Labels["org.example.greeting"] != "hey" || cf.Config.Labels["org.example.none"] != "" || len(cf.Config.Labels) != 2 {
		t.Errorf("labels %v", cf.Config.Labels)
	}
	if !slices.Equal(cf.Config.Env, []string{DefaultPath}) {
		t.Errorf("env %q", cf.Config.Env)
	}
	files := map[string]string{}
	tr := tar.NewReader(mutate.Extract(b.Image))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		if h.Typeflag == tar.TypeReg {
			files[h.Name] = string(data)
		}
	}
	want := map[string]string{"greeting": "hey\n", "etc/hello": "hello\n", "etc/listing": "hello.txt\n"}
	if len(files) != len(want) {
		t.Fatalf("image files %q, want %q", files, want)
	}
	for k, v := range want {
		if files[k] != v {
			t.Errorf("%s = %q, want %q (all: %q)", k, files[k], v, files)
		}
	}
}

// TestBuildRefuses: what would make the image differ from docker build's,
// or let a replayed RUN touch the host, is an error naming the line.
func TestBuildRefuses(t *testing.T) {
	for _, tc := range []struct{ name, dockerfile, want string }{
		{"run in the final stage", "FROM scratch\nRUN true\n", "not supported in the final stage"},
		{"final stage not scratch", "FROM busybox:1.37.0\nCOPY a /a\n", "only scratch"},
		{"shell-form entrypoint", "FROM scratch\nENTRYPOINT /a\n", "exec form"},
		{"named chown", "FROM scratch\nCOPY --chown=app a /a\n", "numeric"},
		{"host path in RUN", "FROM busybox:1.37.0 AS b\nRUN touch /tmp/playpulse-imagebuild-refused\nFROM scratch\n", "/tmp/playpulse-imagebuild-refused"},
		{"bare /out in RUN", "FROM busybox:1.37.0 AS b\nRUN go build -o /out .\nFROM scratch\n", "/out"},
		{"ignored file", "FROM scratch\nCOPY secret.txt /s\n", "left out by .dockerignore"},
		{"another go", "FROM golang:0.0.1-trixie AS b\nRUN true\nFROM scratch\n", "must be go0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeContext(t, map[string]string{"Dockerfile": tc.dockerfile, "a": "a", "secret.txt": "s", ".dockerignore": "secret.txt\n"})
			_, err := Build(context.Background(), Options{Dockerfile: filepath.Join(dir, "Dockerfile"), Context: dir})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := os.Stat("/tmp/playpulse-imagebuild-refused"); err == nil {
		t.Errorf("a refused RUN ran on the host")
	}
}
