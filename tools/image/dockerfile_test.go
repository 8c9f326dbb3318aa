package image

import (
	"slices"
	"strings"
	"testing"
)

const sample = `# syntax=docker/dockerfile:1
ARG GO=1.26.8
FROM golang:${GO}-trixie AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOTOOLCHAIN=local
# a comment between instructions
COPY --chown=1:1 go.work go.work.su[m] ./
RUN --mount=type=cache,target=/root/.cache/go-build \
    # a comment inside a continued line
    go build -o /out/app \
      ./cmd/app
ARG VERSION=dev

FROM scratch
LABEL org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.title="App"
COPY --from=build /out/app /app
USER 65532:65532
ENTRYPOINT ["/app", "-v"]
CMD serve
`

func TestParse(t *testing.T) {
	df, err := Parse(strings.NewReader(sample), "sample.Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if len(df.Global) != 1 || df.Global[0].Cmd != "ARG" || df.Global[0].Args[0] != "GO=1.26.8" {
		t.Errorf("global %+v", df.Global)
	}
	if len(df.Stages) != 2 {
		t.Fatalf("%d stages", len(df.Stages))
	}
	b, ok := df.Stage("build")
	if !ok || b.Base != "golang:${GO}-trixie" || b.Line != 3 {
		t.Errorf("build stage %+v", b)
	}
	byCmd := func(st Stage, cmd string) Instruction {
		for _, in := range st.Instructions {
			if in.Cmd == cmd {
				return in
			}
		}
		t.Fatalf("no %s", cmd)
		return Instruction{}
	}
	if env := byCmd(b, "ENV"); !slices.Equal(env.Args, []string{"CGO_ENABLED", "0", "GOTOOLCHAIN", "local"}) {
		t.Errorf("ENV args %q, want key, value pairs", env.Args)
	}
	cp := byCmd(b, "COPY")
	if v, ok := cp.Flag("chown"); !ok || v != "1:1" || !slices.Equal(cp.Args, []string{"go.work", "go.work.su[m]", "./"}) {
		t.Errorf("COPY flags %q args %q", cp.Flags, cp.Args)
	}
	run := byCmd(b, "RUN")
	if run.Line != 8 || len(run.Args) != 1 || !strings.Contains(run.Args[0], "go build -o /out/app") || strings.Contains(run.Args[0], "comment") || run.JSON {
		t.Errorf("RUN line %d args %q (continuation and comment as docker reads them)", run.Line, run.Args)
	}
	if _, ok := run.Flag("mount"); !ok {
		t.Errorf("RUN flags %q", run.Flags)
	}
	final := df.Final()
	if final.Base != "scratch" || final.Name != "" {
		t.Errorf("final %+v", final)
	}
	if l := byCmd(final, "LABEL"); len(l.Args) != 4 || l.Args[0] != "org.opencontainers.image.version" || l.Args[1] != `"${VERSION}"` {
		t.Errorf("LABEL args %q, want key, value pairs with quotes kept", l.Args)
	}
	if e := byCmd(final, "ENTRYPOINT"); !e.JSON || !slices.Equal(e.Args, []string{"/app", "-v"}) {
		t.Errorf("ENTRYPOINT %+v", e)
	}
	if c := byCmd(final, "CMD"); c.JSON || !slices.Equal(c.Args, []string{"serve"}) {
		t.Errorf("CMD %+v", c)
	}
	args, err := b.Args(map[string]string{"VERSION": "v1"})
	if err != nil || args["VERSION"] != "v1" {
		t.Errorf("build args %v, %v", args, err)
	}
	if v, err := Expand(`"${VERSION}"-x`, args); err != nil || v != "v1-x" {
		t.Errorf("Expand: %q, %v", v, err)
	}
}

func TestParseErrors(t *testing.T) {
	for name, src := range map[string]string{
		"no FROM":                 "ARG X=1\n",
		"instruction before FROM": "ENV A=1\nFROM scratch\n",
		"FROM with a platform":    "FROM --platform=linux/amd64 scratch\n",
		"FROM with junk":          "FROM a b c d\n",
	} {
		if _, err := Parse(strings.NewReader(src), name); err == nil {
			t.Errorf("%s: parsed without error", name)
		}
	}
}
