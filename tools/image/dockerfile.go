// Package image builds the project's container images without a Docker
// engine, from the same Dockerfiles that `docker build` reads, and packs
// single static binaries (the test bed's pause, CoreDNS and Traefik) as
// images. The result is an ordinary image (go-containerregistry v1.Image)
// written as a `docker save` tarball, which `ctr images import`,
// `docker load` and `kind load image-archive` all take.
//
// A Dockerfile is built by replaying it on the host: every stage but the last
// runs in a directory of its own (its COPY instructions take exactly the
// files .dockerignore lets through, its RUN commands run there with its ENV
// and ARGs, /src and /out mapped into the directory), with the host's go and
// node standing in for the stages' base images. The last stage must be
// `FROM scratch`: its instructions are applied to an empty image, one layer
// per COPY, so the image has exactly the files, user, entrypoint and labels
// the Dockerfile gives it. A final stage with anything this package does not
// apply faithfully (RUN, ADD, another base) is an error, not an
// approximation: the Dockerfile and the image cannot silently disagree.
//
// The one stand-in in the final stage is a file that a COPY --from takes from
// a stage's base image rather than from what the stage built (the CA bundle
// of golang:*-trixie): it comes from the same path on the host, which is
// Debian as the base image is.
package image

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Instruction is one Dockerfile instruction.
type Instruction struct {
	Line  int      // first line, 1-based
	Cmd   string   // upper case: FROM, COPY, RUN, ...
	Flags []string // --from=build, --mount=..., as written
	// Args are the arguments after the flags. Exec (JSON) form is decoded;
	// ENV and LABEL give key, value pairs (quotes still in the values:
	// Expand them); other instructions give their words, RUN its script.
	Args []string
	JSON bool   // exec form
	Text string // the instruction as written, for messages
}

// Flag returns the value of --name=value.
func (in Instruction) Flag(name string) (string, bool) {
	for _, f := range in.Flags {
		if v, ok := strings.CutPrefix(f, "--"+name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// Stage is one FROM and what follows it.
type Stage struct {
	Base, Name   string // Name is empty for an unnamed stage
	Line         int
	Instructions []Instruction
}

// Dockerfile is a parsed Dockerfile.
type Dockerfile struct {
	Path   string
	Global []Instruction // ARGs before the first FROM
	Stages []Stage
}

// Final is the stage the image is made of.
func (d *Dockerfile) Final() Stage { return d.Stages[len(d.Stages)-1] }

// Stage returns the stage called name.
func (d *Dockerfile) Stage(name string) (Stage, bool) {
	for _, s := range d.Stages {
		if s.Name == name {
			return s, true
		}
	}
	return Stage{}, false
}

// ParseFile parses the Dockerfile at path.
func ParseFile(path string) (*Dockerfile, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(f, path)
}

// Parse parses a Dockerfile with BuildKit's own parser (the one `docker
// build` uses), so continuations, comments, escapes and exec form are read
// exactly as Docker reads them. name is used in messages.
func Parse(r io.Reader, name string) (*Dockerfile, error) {
	res, err := parser.Parse(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	d := &Dockerfile{Path: name}
	for _, n := range res.AST.Children {
		in := Instruction{Line: n.StartLine, Cmd: strings.ToUpper(n.Value), Flags: n.Flags, JSON: n.Attributes["json"], Text: n.Original}
		for a := n.Next; a != nil; a = a.Next {
			in.Args = append(in.Args, a.Value)
		}
		if in.Cmd == "ENV" || in.Cmd == "LABEL" {
			// The parser gives key, value, "=" triples.
			var kv []string
			for i := 0; i+1 < len(in.Args); i += 3 {
				kv = append(kv, in.Args[i], in.Args[i+1])
			}
			in.Args = kv
		}
		if in.Cmd == "FROM" {
			s := Stage{Line: in.Line}
			switch {
			case len(in.Args) == 1:
				s.Base = in.Args[0]
			case len(in.Args) == 3 && strings.EqualFold(in.Args[1], "AS"):
				s.Base, s.Name = in.Args[0], in.Args[2]
			default:
				return nil, fmt.Errorf("%s:%d: FROM %s: want an image and an optional AS name", name, in.Line, strings.Join(in.Args, " "))
			}
			if len(in.Flags) > 0 {
				return nil, fmt.Errorf("%s:%d: FROM %s is not supported", name, in.Line, strings.Join(in.Flags, " "))
			}
			d.Stages = append(d.Stages, s)
			continue
		}
		if len(d.Stages) == 0 {
			if in.Cmd != "ARG" {
				return nil, fmt.Errorf("%s:%d: %s before FROM", name, in.Line, in.Cmd)
			}
			d.Global = append(d.Global, in)
			continue
		}
		st := &d.Stages[len(d.Stages)-1]
		st.Instructions = append(st.Instructions, in)
	}
	if len(d.Stages) == 0 {
		return nil, fmt.Errorf("%s: no FROM", name)
	}
	return d, nil
}

// lex expands words the way Docker does (quotes, ${VAR}, escapes).
var lex = shell.NewLex('\\')

// Expand expands one word with the variables in env.
func Expand(word string, env map[string]string) (string, error) {
	s, _, err := lex.ProcessWord(word, envGetter(env))
	return s, err
}

func envGetter(env map[string]string) shell.EnvGetter {
	kv := make([]string, 0, len(env))
	for k, v := range env {
		kv = append(kv, k+"="+v)
	}
	return shell.EnvsFromSlice(kv)
}

// Args returns the ARGs a stage declares, with their defaults overridden by
// buildArgs (docker build --build-arg): an ARG is visible only in the stage
// that declares it.
func (s Stage) Args(buildArgs map[string]string) (map[string]string, error) {
	env := map[string]string{}
	for _, in := range s.Instructions {
		if in.Cmd != "ARG" {
			continue
		}
		for _, a := range in.Args {
			k, v, hasDefault := strings.Cut(a, "=")
			if hasDefault {
				var err error
				if v, err = Expand(v, env); err != nil {
					return nil, fmt.Errorf("line %d: ARG %s: %w", in.Line, a, err)
				}
			}
			if b, ok := buildArgs[k]; ok {
				v = b
			}
			env[k] = v
		}
	}
	return env, nil
}
