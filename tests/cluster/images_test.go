package cluster

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"playpulse.dev/tools/image"
)

// services are the project's images, one build/<name>.Dockerfile each.
var services = []string{"producer", "fanout", "controller", "collector"}

// imageVersion and imageCreated are the VERSION and CREATED build
// arguments of the images the tests build: the binaries must show the
// version, the labels must carry both.
const (
	imageVersion = "0.0.0-cluster-test"
	imageCreated = "2026-01-01T00:00:00Z"
	imageSource  = "https://playpulse.dev/tests/cluster"
)

// builtImage is one of the project's images as the tests built and loaded it.
type builtImage struct {
	service string
	tag     string // t-<config digest prefix>: a new build is a new tag
	ref     string // localhost/playpulse/<service>:<tag>
	tarball string
	args    map[string]string
}

// buildImages builds the project's images from build/*.Dockerfile without
// Docker (playpulse.dev/tools/image replays the build stages on this
// machine and applies the scratch final stage), writes each as a docker-save
// tarball and imports it into the node's containerd. The network probe is
// packed the same way from its static binary.
func buildImages(dir string) error {
	revision := "unknown"
	if out, err := exec.Command("git", "-C", bed.root, "rev-parse", "HEAD").Output(); err == nil {
		revision = strings.TrimSpace(string(out))
	}
	args := map[string]string{"VERSION": imageVersion, "REVISION": revision, "CREATED": imageCreated, "SOURCE": imageSource}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	bed.images = map[string]*builtImage{}
	var tarballs []string
	for _, svc := range services {
		var log bytes.Buffer
		t0 := time.Now()
		b, err := image.Build(ctx, image.Options{
			Dockerfile: filepath.Join(bed.root, "build", svc+".Dockerfile"),
			Context:    bed.root,
			BuildArgs:  args,
			Output:     &log,
		})
		if err != nil {
			return fmt.Errorf("build/%s.Dockerfile: %v\n%s", svc, err, lastLines(log.String(), 40))
		}
		id, err := b.Image.ConfigName()
		if err != nil {
			return err
		}
		bi := &builtImage{service: svc, tag: "t-" + id.Hex[:12], args: args}
		bi.ref = "localhost/playpulse/" + svc + ":" + bi.tag
		bi.tarball = filepath.Join(dir, svc+".tar")
		if err := writeTarball(bi.tarball, bi.ref, b.Image); err != nil {
			return err
		}
		bed.images[svc] = bi
		tarballs = append(tarballs, bi.tarball)
		fmt.Fprintf(os.Stderr, "tests/cluster: %s built in %v\n", bi.ref, time.Since(t0).Round(time.Millisecond))
	}

	probe := filepath.Join(dir, "netprobe")
	build := exec.Command("go", "build", "-trimpath", "-o", probe, "./tests/cluster/netprobe")
	build.Dir = bed.root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("go build netprobe: %v\n%s", err, out)
	}
	img, err := image.Pack([]image.File{{Host: probe, Path: "/netprobe"}}, v1.Config{Entrypoint: []string{"/netprobe"}, User: "65532:65532"})
	if err != nil {
		return err
	}
	id, err := img.ConfigName()
	if err != nil {
		return err
	}
	bed.netprobe = "localhost/playpulse-testbed/netprobe:t-" + id.Hex[:12]
	if err := writeTarball(filepath.Join(dir, "netprobe.tar"), bed.netprobe, img); err != nil {
		return err
	}
	tarballs = append(tarballs, filepath.Join(dir, "netprobe.tar"))

	if out, err := clusterSh("", append([]string{"load"}, tarballs...)...); err != nil {
		return fmt.Errorf("hack/cluster.sh load: %v\n%s", err, out)
	}
	return nil
}

func writeTarball(file, ref string, img v1.Image) error {
	tag, err := name.NewTag(ref)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(file, tag, img)
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// TestImagesMatchDockerfiles reads each image as it was imported into the
// node (its docker-save tarball, and containerd's record of it) and checks
// it against what build/<service>.Dockerfile's final stage says, read
// independently of the build: exactly the files it copies (the CA bundle,
// the binary), the user, the entrypoint, the labels with the build
// arguments, scratch's default PATH and nothing else; the binary is static
// and shows the stamped version.
func TestImagesMatchDockerfiles(t *testing.T) {
	needBed(t)
	for _, svc := range services {
		t.Run(svc, func(t *testing.T) {
			bi := bed.images[svc]
			tag, err := name.NewTag(bi.ref)
			if err != nil {
				t.Fatal(err)
			}
			img, err := tarball.ImageFromPath(bi.tarball, &tag)
			if err != nil {
				t.Fatal(err)
			}
			cf, err := img.ConfigFile()
			if err != nil {
				t.Fatal(err)
			}
			want := finalStage(t, filepath.Join(bed.root, "build", svc+".Dockerfile"), bi.args)

			if cf.OS != "linux" || cf.Architecture != runtime.GOARCH {
				t.Errorf("platform %s/%s, want linux/%s (ctr import filters other platforms out)", cf.OS, cf.Architecture, runtime.GOARCH)
			}
			if cf.Config.User != want.user {
				t.Errorf("user %q, the Dockerfile says %q", cf.Config.User, want.user)
			}
			if !slices.Equal(cf.Config.Entrypoint, want.entrypoint) {
				t.Errorf("entrypoint %q, the Dockerfile says %q", cf.Config.Entrypoint, want.entrypoint)
			}
			if len(cf.Config.Cmd) != 0 {
				t.Errorf("cmd %q; the Dockerfile has no CMD", cf.Config.Cmd)
			}
			if !mapsEqual(cf.Config.Labels, want.labels) {
				t.Errorf("labels %v, the Dockerfile says %v", cf.Config.Labels, want.labels)
			}
			if !slices.Equal(cf.Config.Env, []string{image.DefaultPath}) {
				t.Errorf("env %q, want only scratch's default PATH", cf.Config.Env)
			}

			files := imageFiles(t, img)
			var got []string
			for p, f := range files {
				if f.Typeflag == tar.TypeReg {
					got = append(got, p)
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, want.files) {
				t.Fatalf("the image has the files %q; the Dockerfile copies %q", got, want.files)
			}
			for _, p := range want.files {
				f := files[p]
				if f.Uid != 0 || f.Gid != 0 {
					t.Errorf("%s owned by %d:%d; COPY without --chown gives root", p, f.Uid, f.Gid)
				}
			}
			// The CA bundle: the build stage's base image's, which the host
			// (Debian, as golang:*-trixie is) stands in for.
			const caBundle = "etc/ssl/certs/ca-certificates.crt"
			if ca := files[caBundle]; ca == nil || len(ca.data) < 10000 || !bytes.Contains(ca.data, []byte("-----BEGIN CERTIFICATE-----")) {
				t.Errorf("%s is missing or not a CA bundle", caBundle)
			}

			// The binary is static and stamped with the build arguments.
			bin := files[strings.TrimPrefix(want.entrypoint[0], "/")]
			if bin == nil || bin.Mode&0o111 == 0 {
				t.Fatalf("the entrypoint %s is not an executable file of the image", want.entrypoint[0])
			}
			exe := filepath.Join(t.TempDir(), svc)
			if err := os.WriteFile(exe, bin.data, 0o755); err != nil {
				t.Fatal(err)
			}
			if interp := elfInterpreter(t, exe); interp != "" {
				t.Errorf("%s is dynamically linked (interpreter %s); scratch has no libc", want.entrypoint[0], interp)
			}
			help, _ := exec.Command(exe, "-h").CombinedOutput()
			if !bytes.Contains(help, []byte(imageVersion)) || !bytes.Contains(help, []byte(bi.args["REVISION"])) {
				t.Errorf("%s -h does not show version %s and revision %s:\n%s", want.entrypoint[0], imageVersion, bi.args["REVISION"], lastLines(string(help), 5))
			}

			// containerd holds the image under that reference, unpacked
			// from the same layers.
			out, err := exec.Command("ctr", "--address", bed.env["CONTAINERD_SOCK"], "-n", "k8s.io", "images", "ls", "name=="+bi.ref).CombinedOutput()
			if err != nil || !bytes.Contains(out, []byte(bi.ref)) {
				t.Fatalf("containerd has no image %s: %v\n%s", bi.ref, err, out)
			}
			var unpacked, compressed int64
			for _, f := range files {
				unpacked += int64(len(f.data))
			}
			layers, err := img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range layers {
				n, err := l.Size()
				if err != nil {
					t.Fatal(err)
				}
				compressed += n
			}
			t.Logf("%s: files %q, %d layers, %.1f MB unpacked, %.1f MB compressed (as a registry stores it)", bi.ref, got, len(layers), float64(unpacked)/1e6, float64(compressed)/1e6)
		})
	}
}

// stage is what a Dockerfile's final stage puts into the image.
type stage struct {
	user       string
	entrypoint []string
	labels     map[string]string
	files      []string // regular files, no leading slash, sorted
}

// finalStage reads the final stage of a Dockerfile with the same parser
// docker build uses (BuildKit's, through tools/image), expanding the build
// arguments: this is the test's own reading, not the builder's.
func finalStage(t *testing.T, dockerfile string, args map[string]string) stage {
	t.Helper()
	df, err := image.ParseFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	st := df.Final()
	if st.Base != "scratch" {
		t.Fatalf("%s: the final stage is FROM %s; the images are built FROM scratch", dockerfile, st.Base)
	}
	env, err := st.Args(args)
	if err != nil {
		t.Fatal(err)
	}
	expand := func(s string) string {
		v, err := image.Expand(s, env)
		if err != nil {
			t.Fatalf("%s: %v", dockerfile, err)
		}
		return v
	}
	out := stage{labels: map[string]string{}}
	for _, in := range st.Instructions {
		switch in.Cmd {
		case "USER":
			out.user = expand(in.Args[0])
		case "ENTRYPOINT":
			out.entrypoint = in.Args
		case "LABEL":
			for i := 0; i+1 < len(in.Args); i += 2 {
				out.labels[expand(in.Args[i])] = expand(in.Args[i+1])
			}
		case "COPY":
			// The final stage copies single files to absolute paths.
			dst := expand(in.Args[len(in.Args)-1])
			if strings.HasSuffix(dst, "/") {
				dst = path.Join(dst, path.Base(expand(in.Args[0])))
			}
			out.files = append(out.files, strings.TrimPrefix(path.Clean(dst), "/"))
		}
	}
	slices.Sort(out.files)
	return out
}

type imageFile struct {
	*tar.Header
	data []byte
}

// imageFiles flattens the image's layers.
func imageFiles(t *testing.T, img v1.Image) map[string]*imageFile {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string]*imageFile{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimSuffix(strings.TrimPrefix(path.Clean("/"+h.Name), "/"), "/")] = &imageFile{Header: h, data: data}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// elfInterpreter is the dynamic loader an ELF executable asks for ("" for
// a static binary).
func elfInterpreter(t *testing.T, file string) string {
	t.Helper()
	f, err := elf.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			b, err := io.ReadAll(p.Open())
			if err != nil {
				t.Fatal(err)
			}
			return strings.TrimRight(string(b), "\x00")
		}
	}
	return ""
}
