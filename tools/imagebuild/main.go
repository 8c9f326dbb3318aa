// Command imagebuild builds a container image without a Docker engine and
// writes it as a `docker save` tarball (what `ctr images import`, `docker
// load` and `kind load image-archive` take).
//
//	imagebuild -f build/fanout.Dockerfile -t localhost/playpulse/fanout:dev \
//	    -build-arg VERSION=dev -o fanout.tar             # from a Dockerfile
//	imagebuild -bin /path/to/pause -t localhost/pause:3 -o pause.tar
//	                                                   # one static binary as /<name>
//
// A Dockerfile is built by replaying it on the host (package
// playpulse.dev/tools/image explains how, and what the host stands in for).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"playpulse.dev/tools/image"
)

type buildArgs map[string]string

func (b buildArgs) String() string { return fmt.Sprint(map[string]string(b)) }
func (b buildArgs) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return fmt.Errorf("want NAME=value, got %q", s)
	}
	b[k] = v
	return nil
}

func main() {
	args := buildArgs{}
	dockerfile := flag.String("f", "", "Dockerfile to build (its final stage must be FROM scratch)")
	contextDir := flag.String("context", ".", "build context directory, with its .dockerignore")
	bin := flag.String("bin", "", "instead of -f: pack this static binary as /<its name>, its entrypoint")
	user := flag.String("user", "65532:65532", "with -bin: the image's user (numeric uid:gid)")
	ref := flag.String("t", "", "image reference the tarball names, e.g. localhost/playpulse/fanout:dev (required)")
	out := flag.String("o", "", "output tarball (required)")
	flag.Var(args, "build-arg", "NAME=value for an ARG of the Dockerfile (repeatable)")
	flag.Parse()
	if *ref == "" || *out == "" || (*dockerfile == "") == (*bin == "") || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: imagebuild (-f Dockerfile [-context dir] [-build-arg K=V]... | -bin file [-user uid:gid]) -t ref -o out.tar")
		flag.PrintDefaults()
		os.Exit(2)
	}
	tag, err := name.NewTag(*ref)
	if err != nil {
		fmt.Fprintf(os.Stderr, "imagebuild: -t %s: %v\n", *ref, err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	var img v1.Image
	if *bin != "" {
		entry := "/" + filepath.Base(*bin)
		img, err = image.Pack([]image.File{{Host: *bin, Path: entry}}, v1.Config{Entrypoint: []string{entry}, User: *user})
	} else {
		var b *image.Built
		b, err = image.Build(ctx, image.Options{Dockerfile: *dockerfile, Context: *contextDir, BuildArgs: args, Output: os.Stderr})
		if b != nil {
			img = b.Image
		}
	}
	if err == nil {
		err = tarball.WriteToFile(*out, tag, img)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "imagebuild: %v\n", err)
		os.Exit(1)
	}
	id, _ := img.ConfigName()
	fmt.Printf("%s %s %s\n", *out, tag, id)
}
