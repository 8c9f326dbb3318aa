package image

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// DefaultPath is the PATH BuildKit gives an image built FROM scratch.
const DefaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Options configure Build.
type Options struct {
	// Dockerfile is the path of the Dockerfile. Required.
	Dockerfile string
	// Context is the build context directory. Default: the current directory.
	Context string
	// BuildArgs are docker build's --build-arg values. Default: none (the
	// ARG defaults).
	BuildArgs map[string]string
	// Work is where the stages are replayed, one directory per stage, kept
	// afterwards (Built.Roots names them). Default: a temporary directory
	// removed when Build returns.
	Work string
	// Output receives what the RUN commands print. Default: kept in memory
	// and shown only in the error of a command that fails.
	Output io.Writer
	// HostRoot is where a file that the final stage copies from a stage's
	// base image (not from what the stage built) is taken from. Default "/".
	HostRoot string
	// Created is the image's creation time. Default: the Unix epoch, so the
	// same inputs give the same image ID and re-importing it rolls nothing.
	Created time.Time
}

// Built is a built image and how it was made.
type Built struct {
	Image      v1.Image
	Dockerfile *Dockerfile
	// Roots maps each replayed stage (by name, or its index when unnamed)
	// to its directory; only when Options.Work was set.
	Roots map[string]string
	// Files maps every file of the image (its path, no leading slash) to
	// where on the host it came from.
	Files map[string]string
}

// Build replays the Dockerfile's build stages on the host and assembles the
// final stage into an image; see the package comment for what is and is not
// stood in for.
func Build(ctx context.Context, o Options) (*Built, error) {
	if o.Context == "" {
		o.Context = "."
	}
	if o.HostRoot == "" {
		o.HostRoot = "/"
	}
	if o.Created.IsZero() {
		o.Created = time.Unix(0, 0).UTC()
	}
	df, err := ParseFile(o.Dockerfile)
	if err != nil {
		return nil, err
	}
	bc, err := OpenContext(o.Context)
	if err != nil {
		return nil, err
	}
	work, keep := o.Work, o.Work != ""
	if !keep {
		if work, err = os.MkdirTemp("", "imagebuild-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(work)
	}
	b := &builder{o: o, df: df, ctx: bc, roots: map[string]string{}}
	for i, st := range df.Stages[:len(df.Stages)-1] {
		name := stageKey(st, i)
		root := filepath.Join(work, name)
		if err := os.RemoveAll(root); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(root, 0o755); err != nil {
			return nil, err
		}
		b.roots[name] = root
		if err := b.replay(ctx, st, root); err != nil {
			return nil, err
		}
	}
	img, files, err := b.final(df.Final())
	if err != nil {
		return nil, err
	}
	out := &Built{Image: img, Dockerfile: df, Files: files}
	if keep {
		out.Roots = b.roots
	}
	return out, nil
}

func stageKey(st Stage, i int) string {
	if st.Name != "" {
		return st.Name
	}
	return strconv.Itoa(i)
}

type builder struct {
	o     Options
	df    *Dockerfile
	ctx   *Context
	roots map[string]string
}

func (b *builder) errf(in Instruction, format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s: %s", b.df.Path, in.Line, in.Cmd, fmt.Sprintf(format, args...))
}

// inRoot maps an absolute path of a stage into its directory.
func inRoot(root, p string) string { return filepath.Join(root, filepath.FromSlash(path.Clean("/"+p))) }

// replay runs one build stage in root.
func (b *builder) replay(ctx context.Context, st Stage, root string) error {
	if err := b.sameGo(ctx, st); err != nil {
		return err
	}
	workdir := "/"
	env, err := st.Args(b.o.BuildArgs)
	if err != nil {
		return fmt.Errorf("%s: %w", b.df.Path, err)
	}
	for _, in := range st.Instructions {
		switch in.Cmd {
		case "ARG":
			// Collected by st.Args.
		case "WORKDIR":
			d, err := Expand(in.Args[0], env)
			if err != nil {
				return b.errf(in, "%v", err)
			}
			workdir = path.Join(workdir, d)
			if err := os.MkdirAll(inRoot(root, workdir), 0o755); err != nil {
				return err
			}
		case "ENV":
			for i := 0; i+1 < len(in.Args); i += 2 {
				v, err := Expand(in.Args[i+1], env)
				if err != nil {
					return b.errf(in, "%v", err)
				}
				env[in.Args[i]] = v
			}
		case "COPY":
			files, err := b.copySources(in, env, workdir)
			if err != nil {
				return err
			}
			for _, f := range files {
				if err := copyFile(f.host, inRoot(root, f.dst), 0); err != nil {
					return b.errf(in, "%v", err)
				}
			}
		case "RUN":
			if err := b.run(ctx, in, root, workdir, env); err != nil {
				return err
			}
		case "LABEL", "USER", "ENTRYPOINT", "CMD", "EXPOSE":
			// No effect on what a build stage produces.
		default:
			return b.errf(in, "not supported in a build stage")
		}
	}
	return nil
}

// sameGo checks that the host's go is the version of a golang:<version>
// base image the stage stands in for: the binary is the one docker build
// makes only with the same compiler. (A node:<version> base is stood in for
// by the host's node without such a check: what that stage makes, the
// dashboard bundle, is esbuild's output from the npm lock file, and
// tests/e2e checks a host-built bundle against the committed one.)
func (b *builder) sameGo(ctx context.Context, st Stage) error {
	tag, ok := strings.CutPrefix(st.Base, "golang:")
	if !ok {
		return nil
	}
	want := "go" + strings.SplitN(tag, "-", 2)[0]
	out, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
	if err != nil {
		return fmt.Errorf("%s:%d: FROM %s: the host's go stands in for it: %v", b.df.Path, st.Line, st.Base, err)
	}
	if got := strings.TrimSpace(string(out)); got != want {
		return fmt.Errorf("%s:%d: FROM %s: the host's go is %s; it must be %s to build the same binary", b.df.Path, st.Line, st.Base, got, want)
	}
	return nil
}

// run replays a RUN: its script in sh, in the stage's working directory,
// with the stage's ENV and ARGs over the host's environment. Cache mounts
// are dropped (the host's Go build cache and npm cache play their part);
// /out in the script is the stage's /out.
func (b *builder) run(ctx context.Context, in Instruction, root, workdir string, env map[string]string) error {
	for _, f := range in.Flags {
		if !strings.HasPrefix(f, "--mount=type=cache,") {
			return b.errf(in, "flag %s is not supported", f)
		}
	}
	script := strings.Join(in.Args, " ")
	if in.JSON {
		return b.errf(in, "exec form is not supported in a build stage")
	}
	// The script runs on this machine: an absolute path other than the
	// stage's /out would be the host's own.
	for _, m := range absPath.FindAllStringSubmatch(script, -1) {
		if p := m[1]; !strings.HasPrefix(p, "/out/") {
			return b.errf(in, "%s: a RUN replayed on the host may name no absolute path but /out/...", p)
		}
	}
	out := inRoot(root, "/out")
	for _, prefix := range []string{" ", "="} {
		script = strings.ReplaceAll(script, prefix+"/out/", prefix+out+"/")
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "sh", "-c", script)
	cmd.Dir = inRoot(root, workdir)
	cmd.Env = os.Environ()
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		cmd.Env = append(cmd.Env, k+"="+env[k])
	}
	var buf bytes.Buffer
	if b.o.Output != nil {
		cmd.Stdout, cmd.Stderr = b.o.Output, b.o.Output
	} else {
		cmd.Stdout, cmd.Stderr = &buf, &buf
	}
	if err := cmd.Run(); err != nil {
		return b.errf(in, "%s: %v\n%s", script, err, buf.Bytes())
	}
	return nil
}

// absPath finds absolute paths in a shell script: a / at the start of a
// word or after =.
var absPath = regexp.MustCompile(`(?:^|[\s=])(/[^\s;&|)"']*)`)

// copyItem is one file a COPY puts somewhere.
type copyItem struct {
	host string      // where it is on the host
	dst  string      // absolute path in the stage or image
	mode fs.FileMode // permission bits
}

// copySources resolves a COPY (from the context or from an earlier stage)
// into files, with Docker's rules: a directory source copies its content; a
// file source into a destination ending in / keeps its name.
func (b *builder) copySources(in Instruction, env map[string]string, workdir string) ([]copyItem, error) {
	if len(in.Args) < 2 || in.JSON {
		return nil, b.errf(in, "want COPY [--from=stage] src... dst")
	}
	for _, f := range in.Flags {
		if !strings.HasPrefix(f, "--from=") && !strings.HasPrefix(f, "--chown=") {
			return nil, b.errf(in, "flag %s is not supported", f)
		}
	}
	words := make([]string, len(in.Args))
	for i, a := range in.Args {
		w, err := Expand(a, env)
		if err != nil {
			return nil, b.errf(in, "%v", err)
		}
		words[i] = w
	}
	srcs, dst := words[:len(words)-1], words[len(words)-1]
	dirDst := strings.HasSuffix(dst, "/") || len(srcs) > 1
	if !path.IsAbs(dst) {
		dst = path.Join(workdir, dst)
	}
	var items []copyItem
	from, fromStage := in.Flag("from")
	for _, src := range srcs {
		var found []copyItem
		if fromStage {
			root, ok := b.roots[from]
			if !ok {
				return nil, b.errf(in, "--from=%s: no earlier stage of that name", from)
			}
			host := inRoot(root, src)
			if _, err := os.Stat(host); os.IsNotExist(err) {
				// Not something the stage made: a file of the stage's base
				// image, which the host stands in for.
				host = inRoot(b.o.HostRoot, src)
			}
			fi, err := os.Stat(host)
			if err != nil {
				return nil, b.errf(in, "%s: %v", src, err)
			}
			if fi.IsDir() {
				err = filepath.WalkDir(host, func(p string, d fs.DirEntry, err error) error {
					if err != nil || d.IsDir() {
						return err
					}
					rel, _ := filepath.Rel(host, p)
					info, err := d.Info()
					if err != nil {
						return err
					}
					found = append(found, copyItem{host: p, dst: path.Join(dst, filepath.ToSlash(rel)), mode: info.Mode().Perm()})
					return nil
				})
				if err != nil {
					return nil, b.errf(in, "%v", err)
				}
			} else {
				target := dst
				if dirDst {
					target = path.Join(dst, path.Base(src))
				}
				found = append(found, copyItem{host: host, dst: target, mode: fi.Mode().Perm()})
			}
		} else {
			files, err := b.ctx.Files(src)
			if err != nil {
				return nil, b.errf(in, "%v", err)
			}
			isDir := b.ctx.isDirSource(src)
			for _, f := range files {
				base := path.Dir(f)
				if isDir {
					base = strings.TrimSuffix(path.Clean(src), "/")
				}
				rel := strings.TrimPrefix(strings.TrimPrefix(f, base), "/")
				target := path.Join(dst, rel)
				if !isDir && !dirDst {
					target = dst
				}
				host := filepath.Join(b.ctx.Dir, filepath.FromSlash(f))
				fi, err := os.Stat(host)
				if err != nil {
					return nil, err
				}
				found = append(found, copyItem{host: host, dst: target, mode: fi.Mode().Perm()})
			}
		}
		if len(found) == 0 && !strings.ContainsAny(src, "*?[") {
			return nil, b.errf(in, "%s copies nothing (missing, or left out by .dockerignore)", src)
		}
		items = append(items, found...)
	}
	return items, nil
}

// final applies the last stage to an empty image.
func (b *builder) final(st Stage) (v1.Image, map[string]string, error) {
	if st.Base != "scratch" {
		return nil, nil, fmt.Errorf("%s:%d: the final stage is FROM %s; only scratch is built without Docker", b.df.Path, st.Line, st.Base)
	}
	env, err := st.Args(b.o.BuildArgs)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", b.df.Path, err)
	}
	cfg := v1.Config{Labels: map[string]string{}}
	var imageEnv []string
	img := empty.Image
	files := map[string]string{}
	workdir := "/"
	for _, in := range st.Instructions {
		switch in.Cmd {
		case "ARG":
		case "LABEL":
			for i := 0; i+1 < len(in.Args); i += 2 {
				k, err := Expand(in.Args[i], env)
				if err != nil {
					return nil, nil, b.errf(in, "%v", err)
				}
				v, err := Expand(in.Args[i+1], env)
				if err != nil {
					return nil, nil, b.errf(in, "%v", err)
				}
				cfg.Labels[k] = v
			}
		case "ENV":
			for i := 0; i+1 < len(in.Args); i += 2 {
				v, err := Expand(in.Args[i+1], env)
				if err != nil {
					return nil, nil, b.errf(in, "%v", err)
				}
				env[in.Args[i]] = v
				imageEnv = append(imageEnv, in.Args[i]+"="+v)
			}
		case "USER":
			u, err := Expand(in.Args[0], env)
			if err != nil {
				return nil, nil, b.errf(in, "%v", err)
			}
			cfg.User = u
		case "WORKDIR":
			d, err := Expand(in.Args[0], env)
			if err != nil {
				return nil, nil, b.errf(in, "%v", err)
			}
			workdir = path.Join(workdir, d)
			cfg.WorkingDir = workdir
		case "ENTRYPOINT", "CMD":
			if !in.JSON {
				return nil, nil, b.errf(in, "shell form needs a shell, and scratch has none: use exec form [\"...\"]")
			}
			if in.Cmd == "ENTRYPOINT" {
				cfg.Entrypoint = in.Args
			} else {
				cfg.Cmd = in.Args
			}
		case "EXPOSE":
			if cfg.ExposedPorts == nil {
				cfg.ExposedPorts = map[string]struct{}{}
			}
			for _, p := range in.Args {
				if !strings.Contains(p, "/") {
					p += "/tcp"
				}
				cfg.ExposedPorts[p] = struct{}{}
			}
		case "COPY":
			items, err := b.copySources(in, env, workdir)
			if err != nil {
				return nil, nil, err
			}
			uid, gid := 0, 0
			if ch, ok := in.Flag("chown"); ok {
				if uid, gid, err = numericOwner(ch); err != nil {
					return nil, nil, b.errf(in, "%v", err)
				}
			}
			layer, err := layerOf(items, uid, gid, b.o.Created)
			if err != nil {
				return nil, nil, b.errf(in, "%v", err)
			}
			img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{CreatedBy: in.Text, Created: v1.Time{Time: b.o.Created}}})
			if err != nil {
				return nil, nil, err
			}
			for _, it := range items {
				files[strings.TrimPrefix(it.dst, "/")] = it.host
			}
		default:
			return nil, nil, b.errf(in, "not supported in the final stage: the image built here would differ from docker build's")
		}
	}
	hasPath := false
	for _, e := range imageEnv {
		hasPath = hasPath || strings.HasPrefix(e, "PATH=")
	}
	if !hasPath {
		imageEnv = append([]string{DefaultPath}, imageEnv...)
	}
	cfg.Env = imageEnv
	img, err = withConfig(img, cfg, b.o.Created)
	return img, files, err
}

func numericOwner(s string) (int, int, error) {
	u, g, ok := strings.Cut(s, ":")
	if !ok {
		g = u
	}
	uid, err1 := strconv.Atoi(u)
	gid, err2 := strconv.Atoi(g)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("--chown=%s: only numeric uid:gid (scratch has no /etc/passwd)", s)
	}
	return uid, gid, nil
}

// withConfig sets the config and the platform of the machine the binaries
// were built for.
func withConfig(img v1.Image, cfg v1.Config, created time.Time) (v1.Image, error) {
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", runtime.GOARCH
	cf.Created = v1.Time{Time: created}
	cf.Config = cfg
	return mutate.ConfigFile(img, cf)
}

// layerOf packs files into one layer, with their parent directories (0755),
// owned by uid:gid, at one fixed time, in name order: the same files give
// the same layer digest.
func layerOf(items []copyItem, uid, gid int, mtime time.Time) (v1.Layer, error) {
	sort.Slice(items, func(i, j int) bool { return items[i].dst < items[j].dst })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, it := range items {
		name := strings.TrimPrefix(path.Clean(it.dst), "/")
		var parents []string
		for d := path.Dir(name); d != "." && d != "/" && !dirs[d]; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755, Uid: uid, Gid: gid, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
				return nil, err
			}
		}
		data, err := os.ReadFile(it.host)
		if err != nil {
			return nil, err
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: int64(it.mode), Size: int64(len(data)), Uid: uid, Gid: gid, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
}

// File is one file of a packed image.
type File struct {
	Host string      // path on the host
	Path string      // path in the image
	Mode fs.FileMode // permission bits (default: the host file's)
}

// Pack makes a one-layer image of files with cfg (platform linux and this
// machine's architecture): how the test bed packs binaries that come with no
// Dockerfile of ours (pause, CoreDNS, Traefik).
func Pack(files []File, cfg v1.Config) (v1.Image, error) {
	items := make([]copyItem, len(files))
	for i, f := range files {
		m := f.Mode
		if m == 0 {
			fi, err := os.Stat(f.Host)
			if err != nil {
				return nil, err
			}
			m = fi.Mode().Perm()
		}
		items[i] = copyItem{host: f.Host, dst: f.Path, mode: m}
	}
	epoch := time.Unix(0, 0).UTC()
	layer, err := layerOf(items, 0, 0, epoch)
	if err != nil {
		return nil, err
	}
	img, err := mutate.Append(empty.Image, mutate.Addendum{Layer: layer})
	if err != nil {
		return nil, err
	}
	if len(cfg.Env) == 0 {
		cfg.Env = []string{DefaultPath}
	}
	return withConfig(img, cfg, epoch)
}

// copyFile copies a file, creating the parent directories.
func copyFile(from, to string, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
		return err
	}
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	if mode == 0 {
		fi, err := in.Stat()
		if err != nil {
			return err
		}
		mode = fi.Mode().Perm()
	}
	o, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(o, in); err != nil {
		o.Close()
		return err
	}
	return o.Close()
}
