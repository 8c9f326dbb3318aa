package packaging

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.starlark.net/starlark"
	"go.starlark.net/starlarkstruct"
	"go.starlark.net/syntax"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// tiltVersion is the Tilt release whose API the stand-ins below copy: each
// takes exactly the parameters of the real built-in in Tilt v0.34.0 (its
// API reference, internal/tiltfile/api/__init__.py in tilt-dev/tilt), or of
// the pinned tilt-extensions commit for load('ext://...'). The Tiltfile's
// version_settings constraint must admit it.
const tiltVersion = "0.34.0"

// tilt records what a Tiltfile asks Tilt to do, through stand-ins for the
// Tilt built-ins and extensions it uses. Each stand-in takes exactly the
// parameters of the real one in tiltVersion, so a misspelt argument fails
// the evaluation as it would in Tilt.
type tilt struct {
	t         *testing.T
	images    []tiltImage
	locals    []tiltLocalResource
	resources []tiltK8sResource
	yaml      []*unstructured.Unstructured
	yamlFiles []string
	watched   []string
	buttons   [][]string
	extRepos  map[string]string // name -> ref
	ran       []string          // local() commands
}

type tiltImage struct {
	ref, context, dockerfile string
	only                     []string
	matchInEnvVars           bool
	syncs                    [][2]string // local, remote
	entrypoint               []string
	buildArgs                map[string]string
}

type tiltLocalResource struct {
	name         string
	cmd          []string
	deps         []string
	resourceDeps []string
}

type tiltK8sResource struct {
	workload, newName string
	objects           []string
	resourceDeps      []string
	portForwards      []string
}

// builtin makes a stand-in whose parameters are spec ("name" required,
// "name?" optional, as starlark.UnpackArgs), handing them to fn by name.
func builtin(name string, spec []string, fn func(map[string]starlark.Value) (starlark.Value, error)) *starlark.Builtin {
	return starlark.NewBuiltin(name, func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
		vals := make([]starlark.Value, len(spec))
		pairs := make([]any, 0, 2*len(spec))
		for i, p := range spec {
			pairs = append(pairs, p, &vals[i])
		}
		if err := starlark.UnpackArgs(name, args, kwargs, pairs...); err != nil {
			return nil, err
		}
		m := map[string]starlark.Value{}
		for i, p := range spec {
			if vals[i] != nil {
				m[strings.TrimSuffix(p, "?")] = vals[i]
			}
		}
		out, err := fn(m)
		if out == nil && err == nil {
			out = starlark.None
		}
		return out, err
	})
}

// strs turns a string or a list of strings into a slice.
func strs(v starlark.Value) []string {
	switch x := v.(type) {
	case nil:
		return nil
	case starlark.String:
		return []string{string(x)}
	case *starlark.List:
		var out []string
		for i := range x.Len() {
			if s, ok := x.Index(i).(starlark.String); ok {
				out = append(out, string(s))
			} else {
				out = append(out, x.Index(i).String())
			}
		}
		return out
	}
	return []string{v.String()}
}

func strOr(v starlark.Value, def string) string {
	if s, ok := v.(starlark.String); ok {
		return string(s)
	}
	return def
}

var dockerBuildParams = []string{"ref", "context", "build_args?", "dockerfile?", "dockerfile_contents?", "live_update?",
	"match_in_env_vars?", "ignore?", "only?", "entrypoint?", "target?", "ssh?", "network?", "secret?", "extra_tag?",
	"container_args?", "cache_from?", "pull?", "platform?", "extra_hosts?"}

// liveUpdateStep is what sync() and run() return.
type liveUpdateStep struct {
	starlark.Tuple
	kind string
}

func (s liveUpdateStep) Type() string { return "live_update_" + s.kind + "_step" }

func (tl *tilt) addImage(kw map[string]starlark.Value) {
	img := tiltImage{
		ref:            strOr(kw["ref"], ""),
		context:        strOr(kw["context"], ""),
		dockerfile:     path.Join(strOr(kw["context"], "."), "Dockerfile"),
		only:           strs(kw["only"]),
		matchInEnvVars: kw["match_in_env_vars"] == starlark.True,
		entrypoint:     strs(kw["entrypoint"]),
		buildArgs:      map[string]string{},
	}
	if d, ok := kw["dockerfile"]; ok {
		img.dockerfile = strOr(d, "")
	}
	if ba, ok := kw["build_args"].(*starlark.Dict); ok {
		for _, item := range ba.Items() {
			img.buildArgs[strOr(item[0], "")] = strOr(item[1], "")
		}
	}
	if lu, ok := kw["live_update"].(*starlark.List); ok {
		for i := range lu.Len() {
			if s, ok := lu.Index(i).(liveUpdateStep); ok && s.kind == "sync" {
				img.syncs = append(img.syncs, [2]string{strOr(s.Tuple[0], ""), strOr(s.Tuple[1], "")})
			}
		}
	}
	tl.images = append(tl.images, img)
}

func (tl *tilt) predeclared() starlark.StringDict {
	noop := func(name string, spec ...string) *starlark.Builtin {
		return builtin(name, spec, func(map[string]starlark.Value) (starlark.Value, error) { return nil, nil })
	}
	return starlark.StringDict{
		"version_settings": builtin("version_settings", []string{"check_updates?", "constraint?"}, func(kw map[string]starlark.Value) (starlark.Value, error) {
			if c, ok := kw["constraint"]; ok && !semverAdmits(strOr(c, ""), tiltVersion) {
				return nil, fmt.Errorf("version_settings(constraint=%s) does not admit Tilt %s, whose API the test's stand-ins copy", c, tiltVersion)
			}
			return nil, nil
		}),
		"allow_k8s_contexts": noop("allow_k8s_contexts", "contexts"),
		"update_settings":    noop("update_settings", "max_parallel_updates?", "k8s_upsert_timeout_secs?", "suppress_unused_image_warnings?"),
		"ci_settings":        noop("ci_settings", "k8s_grace_period?", "timeout?", "readiness_timeout?"),
		"os": starlarkstruct.FromStringDict(starlark.String("os"), starlark.StringDict{
			"getenv": builtin("os.getenv", []string{"key", "default?"}, func(kw map[string]starlark.Value) (starlark.Value, error) {
				if d, ok := kw["default"]; ok {
					return d, nil // the test sees the Tiltfile's defaults
				}
				return starlark.None, nil
			}),
		}),
		"v1alpha1": starlarkstruct.FromStringDict(starlark.String("v1alpha1"), starlark.StringDict{
			"extension_repo": builtin("v1alpha1.extension_repo", []string{"name", "labels?", "annotations?", "url?", "path?", "ref?"},
				func(kw map[string]starlark.Value) (starlark.Value, error) {
					tl.extRepos[strOr(kw["name"], "")] = strOr(kw["ref"], "")
					return nil, nil
				}),
		}),
		"docker_build": builtin("docker_build", dockerBuildParams, func(kw map[string]starlark.Value) (starlark.Value, error) {
			tl.addImage(kw)
			return nil, nil
		}),
		"sync": builtin("sync", []string{"local_path", "remote_path"}, func(kw map[string]starlark.Value) (starlark.Value, error) {
			return liveUpdateStep{starlark.Tuple{kw["local_path"], kw["remote_path"]}, "sync"}, nil
		}),
		"run": builtin("run", []string{"cmd", "trigger?", "echo_off?"}, func(kw map[string]starlark.Value) (starlark.Value, error) {
			return liveUpdateStep{starlark.Tuple{kw["cmd"]}, "run"}, nil
		}),
		"local_resource": builtin("local_resource", []string{"name", "cmd?", "deps?", "trigger_mode?", "resource_deps?", "ignore?",
			"auto_init?", "serve_cmd?", "cmd_bat?", "serve_cmd_bat?", "allow_parallel?", "links?", "tags?", "env?", "serve_env?",
			"readiness_probe?", "dir?", "serve_dir?", "labels?"}, func(kw map[string]starlark.Value) (starlark.Value, error) {
			cmd := strs(kw["cmd"])
			if _, ok := kw["cmd"].(starlark.String); ok {
				cmd = strings.Fields(cmd[0])
			}
			tl.locals = append(tl.locals, tiltLocalResource{
				name: strOr(kw["name"], ""), cmd: cmd, deps: strs(kw["deps"]), resourceDeps: strs(kw["resource_deps"]),
			})
			return nil, nil
		}),
		"local": builtin("local", []string{"command", "quiet?", "command_bat?", "echo_off?", "env?", "dir?", "stdin?"},
			func(kw map[string]starlark.Value) (starlark.Value, error) {
				return tl.local(kw["command"])
			}),
		"k8s_yaml": builtin("k8s_yaml", []string{"yaml", "allow_duplicates?"}, func(kw map[string]starlark.Value) (starlark.Value, error) {
			switch y := kw["yaml"].(type) {
			case blob:
				objs, err := decodeObjectsErr(strings.NewReader(string(y)))
				if err != nil {
					return nil, err
				}
				tl.yaml = append(tl.yaml, objs...)
			default:
				for _, f := range strs(y) {
					tl.yamlFiles = append(tl.yamlFiles, f)
					tl.yaml = append(tl.yaml, decodeFile(tl.t, f)...)
				}
			}
			return nil, nil
		}),
		"watch_file": builtin("watch_file", []string{"path"}, func(kw map[string]starlark.Value) (starlark.Value, error) {
			tl.watched = append(tl.watched, strOr(kw["path"], ""))
			return nil, nil
		}),
		"k8s_resource": builtin("k8s_resource", []string{"workload?", "new_name?", "port_forwards?", "extra_pod_selectors?",
			"trigger_mode?", "resource_deps?", "objects?", "auto_init?", "pod_readiness?", "links?", "labels?", "discovery_strategy?"},
			func(kw map[string]starlark.Value) (starlark.Value, error) {
				r := tiltK8sResource{workload: strOr(kw["workload"], ""), newName: strOr(kw["new_name"], ""),
					objects: strs(kw["objects"]), resourceDeps: strs(kw["resource_deps"])}
				if pf, ok := kw["port_forwards"].(*starlark.List); ok {
					for i := range pf.Len() {
						r.portForwards = append(r.portForwards, strOr(pf.Index(i), pf.Index(i).String()))
					}
				}
				tl.resources = append(tl.resources, r)
				return nil, nil
			}),
		"port_forward": builtin("port_forward", []string{"local_port", "container_port?", "name?", "link_path?", "host?"},
			func(kw map[string]starlark.Value) (starlark.Value, error) {
				return starlark.String(fmt.Sprintf("%v:%v", kw["local_port"], kw["container_port"])), nil
			}),
		"link": noop("link", "url", "name?"),
		"str":  starlark.Universe["str"],
	}
}

// blob is what local() returns: text Tilt can parse as YAML.
type blob string

func (b blob) String() string        { return string(b) }
func (b blob) Type() string          { return "blob" }
func (b blob) Freeze()               {}
func (b blob) Truth() starlark.Bool  { return len(b) > 0 }
func (b blob) Hash() (uint32, error) { return starlark.String(b).Hash() }

// Commands local() may really run while the Tiltfile is evaluated: reading
// the Go environment and rendering the chart with the pinned helm. Anything
// else needs a stand-in here first.
var localAllowed = map[string]bool{"go": true, "hack/helm.sh": true}

func (tl *tilt) local(command starlark.Value) (starlark.Value, error) {
	argv := strs(command)
	if _, ok := command.(starlark.String); ok {
		argv = strings.Fields(argv[0])
	}
	if len(argv) == 0 || !localAllowed[argv[0]] {
		return nil, fmt.Errorf("local(%v): the test runs only %v; add a stand-in for this command", argv, localAllowed)
	}
	tl.ran = append(tl.ran, strings.Join(argv, " "))
	name := argv[0]
	if strings.Contains(name, "/") {
		name = repoPath(name)
	}
	cmd := exec.Command(name, argv[1:]...)
	cmd.Dir = repoRoot
	if argv[0] == "hack/helm.sh" {
		cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+helmHome(tl.t)+"/cache", "HELM_CONFIG_HOME="+helmHome(tl.t)+"/config")
	}
	out, err := cmd.Output()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return nil, fmt.Errorf("local(%v): %v\n%s", argv, err, ee.Stderr)
		}
		return nil, fmt.Errorf("local(%v): %v", argv, err)
	}
	return blob(out), nil
}

// extensions are the stand-ins for load('ext://...'), with the signatures of
// the pinned tilt-extensions commit.
func (tl *tilt) extensions() map[string]starlark.StringDict {
	return map[string]starlark.StringDict{
		"ext://restart_process": {
			"docker_build_with_restart": starlark.NewBuiltin("docker_build_with_restart", func(thread *starlark.Thread, b *starlark.Builtin, args starlark.Tuple, kwargs []starlark.Tuple) (starlark.Value, error) {
				// (ref, context, entrypoint, live_update, base_suffix='-base',
				// restart_file=..., **kwargs for docker_build)
				var own, rest []starlark.Tuple
				for _, kv := range kwargs {
					switch strOr(kv[0], "") {
					case "entrypoint", "live_update", "base_suffix", "restart_file":
						own = append(own, kv)
					default:
						rest = append(rest, kv)
					}
				}
				var ref, ctx, entrypoint, liveUpdate, baseSuffix, restartFile starlark.Value
				if err := starlark.UnpackArgs(b.Name(), args, own, "ref", &ref, "context", &ctx, "entrypoint", &entrypoint,
					"live_update", &liveUpdate, "base_suffix?", &baseSuffix, "restart_file?", &restartFile); err != nil {
					return nil, err
				}
				if lu, ok := liveUpdate.(*starlark.List); !ok || lu.Len() == 0 {
					return nil, fmt.Errorf("docker_build_with_restart requires at least one live_update step")
				}
				all := append([]starlark.Tuple{{starlark.String("entrypoint"), entrypoint}, {starlark.String("live_update"), liveUpdate}}, rest...)
				return builtin("docker_build", dockerBuildParams, func(kw map[string]starlark.Value) (starlark.Value, error) {
					tl.addImage(kw)
					return nil, nil
				}).CallInternal(thread, starlark.Tuple{ref, ctx}, all)
			}),
		},
		"ext://uibutton": {
			"cmd_button": builtin("cmd_button", []string{"name", "resource?", "argv?", "text?", "location?", "icon_name?", "dir?",
				"env?", "inputs?", "requires_confirmation?"}, func(kw map[string]starlark.Value) (starlark.Value, error) {
				tl.buttons = append(tl.buttons, strs(kw["argv"]))
				return nil, nil
			}),
			"location": starlarkstruct.FromStringDict(starlark.String("location"), starlark.StringDict{
				"NAV": starlark.String("nav"), "RESOURCE": starlark.String("resource"),
			}),
		},
	}
}

func evalTiltfile(t *testing.T) *tilt {
	t.Helper()
	tl := &tilt{t: t, extRepos: map[string]string{}}
	src, err := os.ReadFile(repoPath("Tiltfile"))
	if err != nil {
		t.Fatal(err)
	}
	exts := tl.extensions()
	thread := &starlark.Thread{
		Name: "Tiltfile",
		Load: func(_ *starlark.Thread, module string) (starlark.StringDict, error) {
			if m, ok := exts[module]; ok {
				return m, nil
			}
			return nil, fmt.Errorf("load(%q): no stand-in for this module", module)
		},
		Print: func(_ *starlark.Thread, msg string) { t.Log("Tiltfile:", msg) },
	}
	opts := &syntax.FileOptions{Set: true, While: true, TopLevelControl: true, GlobalReassign: true, Recursion: true}
	if _, err := starlark.ExecFileOptions(opts, thread, "Tiltfile", src, tl.predeclared()); err != nil {
		if ee, ok := err.(*starlark.EvalError); ok {
			t.Fatalf("evaluating the Tiltfile: %s", ee.Backtrace())
		}
		t.Fatalf("evaluating the Tiltfile: %v", err)
	}
	return tl
}

func TestTiltfile(t *testing.T) {
	tl := evalTiltfile(t)

	exists := func(what, rel string) {
		t.Helper()
		if _, err := os.Stat(repoPath(rel)); err != nil {
			t.Errorf("the Tiltfile names %s %q, which does not exist", what, rel)
		}
	}

	// Outputs of the local resources (files they write with -o).
	outputs := map[string]bool{}
	for _, lr := range tl.locals {
		for i, a := range lr.cmd {
			if a == "-o" && i+1 < len(lr.cmd) {
				outputs[lr.cmd[i+1]] = true
			}
			if strings.HasPrefix(a, "./") {
				exists("a package or file in local_resource "+lr.name, a)
			}
		}
		if len(lr.cmd) > 0 && strings.Contains(lr.cmd[0], "/") {
			exists("the command of local_resource "+lr.name, lr.cmd[0])
		}
		for _, d := range lr.deps {
			exists("a dependency of local_resource "+lr.name, d)
		}
	}
	for _, w := range tl.watched {
		exists("a watched path", w)
	}
	for _, f := range tl.yamlFiles {
		exists("a YAML file", f)
	}

	// The chart: rendered by a local() call that names it and its values.
	rendersChart := false
	for _, cmd := range tl.ran {
		if strings.HasPrefix(cmd, "hack/helm.sh template") && strings.Contains(cmd, chartDir) && strings.Contains(cmd, devValues) {
			rendersChart = true
		}
	}
	if !rendersChart {
		t.Errorf("the Tiltfile does not render %s with %s; it ran %v", chartDir, devValues, tl.ran)
	}

	// Images: three, each built from an existing Dockerfile, from a context
	// the local resources fill, and used by what the Tiltfile deploys.
	var refs []string
	for _, img := range tl.images {
		refs = append(refs, img.ref)
		exists("the Dockerfile of "+img.ref, img.dockerfile)
		for _, o := range img.only {
			p := path.Join(img.context, o)
			if !outputs[p] {
				t.Errorf("image %s takes %s from its context, which no local_resource builds (outputs: %v)", img.ref, p, outputs)
			}
		}
		for _, s := range img.syncs {
			if !outputs[s[0]] {
				t.Errorf("image %s live-updates %s, which no local_resource builds", img.ref, s[0])
			}
			if len(img.entrypoint) > 0 && img.entrypoint[0] != s[1] {
				t.Errorf("image %s syncs the binary to %s but runs %v", img.ref, s[1], img.entrypoint)
			}
		}
		if uses := imageUses(t, tl.yaml, img.ref, img.matchInEnvVars); uses == 0 {
			t.Errorf("image %s is built but nothing the Tiltfile deploys uses it (match_in_env_vars=%v)", img.ref, img.matchInEnvVars)
		}
	}
	slices.Sort(refs)
	if want := []string{"playpulse/collector", "playpulse/controller", "playpulse/fanout", "playpulse/producer"}; !slices.Equal(refs, want) {
		t.Errorf("images built: %v, want %v", refs, want)
	}
	// The long-running services are live-updated: a new binary is synced
	// into the running pod (the producer pods are the controller's, which
	// rolls them when their image changes).
	for _, img := range tl.images {
		if img.ref != "playpulse/producer" && len(img.syncs) == 0 {
			t.Errorf("image %s has no live_update sync: a new binary would rebuild the image and restart the pod", img.ref)
		}
	}

	// Resources: workloads and objects exist in the YAML; dependencies
	// name resources that exist.
	names := map[string]bool{}
	for _, lr := range tl.locals {
		names[lr.name] = true
	}
	for _, r := range tl.resources {
		if r.workload != "" {
			if !matchesObject(tl.yaml, r.workload+":deployment") {
				t.Errorf("k8s_resource(%q): no such workload in the deployed YAML", r.workload)
			}
			names[r.workload] = true
		}
		if r.newName != "" {
			names[r.newName] = true
		}
		for _, o := range r.objects {
			if !matchesObject(tl.yaml, o) {
				t.Errorf("k8s_resource(%q) claims object %q, which is not in the deployed YAML", r.newName, o)
			}
		}
	}
	for _, r := range tl.resources {
		for _, d := range r.resourceDeps {
			if !names[d] {
				t.Errorf("k8s_resource(%q) depends on %q, which is no resource", r.newName, d)
			}
		}
	}
	for _, lr := range tl.locals {
		for _, d := range lr.resourceDeps {
			if !names[d] {
				t.Errorf("local_resource(%q) depends on %q, which is no resource", lr.name, d)
			}
		}
	}

	// The dashboard is forwarded to localhost:8080, the collector to 8083.
	forwarded := map[string]bool{}
	for _, r := range tl.resources {
		for _, pf := range r.portForwards {
			local, _, _ := strings.Cut(pf, ":")
			forwarded[local] = true
		}
	}
	if !forwarded["8080"] {
		t.Error("nothing forwards localhost:8080 to the dashboard")
	}
	if !forwarded["8083"] {
		t.Error("nothing forwards localhost:8083 to the collector, where local players post")
	}

	// Buttons apply the sample streams, which exist.
	var samples []string
	for _, argv := range tl.buttons {
		for i, a := range argv {
			if a == "-f" && i+1 < len(argv) {
				exists("a file a button applies", argv[i+1])
				samples = append(samples, path.Base(argv[i+1]))
			}
		}
	}
	slices.Sort(samples)
	if want := []string{"prime-time.yaml", "quiet.yaml", "spike.yaml"}; !slices.Equal(samples, want) {
		t.Errorf("buttons apply %v, want %v", samples, want)
	}

	// Extensions are pinned to a commit.
	for name, ref := range tl.extRepos {
		if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(ref) {
			t.Errorf("extension repo %s is not pinned to a commit (ref %q)", name, ref)
		}
	}
	t.Logf("Tiltfile: %d images, %d local resources, %d k8s resources, %d objects, %d buttons",
		len(tl.images), len(tl.locals), len(tl.resources), len(tl.yaml), len(tl.buttons))
}

// imageUses counts containers (and, with inEnv, env values) that refer to
// the image name ref whatever the registry prefix or tag, as Tilt matches.
func imageUses(t *testing.T, objs []*unstructured.Unstructured, ref string, inEnv bool) int {
	matches := func(image string) bool {
		name := image
		if i := strings.IndexAny(name, "@"); i >= 0 {
			name = name[:i]
		}
		if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
			name = name[:i]
		}
		return name == ref || strings.HasSuffix(name, "/"+ref)
	}
	n := 0
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		for _, c := range containers(t, o) {
			if matches(fmt.Sprint(c["image"])) {
				n++
			}
			if inEnv {
				env, _ := c["env"].([]any)
				for _, e := range env {
					if v, ok := e.(map[string]any)["value"].(string); ok && matches(v) {
						n++
					}
				}
			}
		}
	}
	return n
}

// matchesObject reports whether a Tilt object selector "name:kind[:namespace]"
// (case-insensitive) matches one of objs.
func matchesObject(objs []*unstructured.Unstructured, sel string) bool {
	parts := strings.Split(sel, ":")
	for _, o := range objs {
		if !strings.EqualFold(o.GetName(), parts[0]) {
			continue
		}
		if len(parts) > 1 && !strings.EqualFold(o.GetKind(), parts[1]) {
			continue
		}
		if len(parts) > 2 && !strings.EqualFold(o.GetNamespace(), parts[2]) {
			continue
		}
		return true
	}
	return false
}

// semverAdmits reports whether version satisfies constraint, a
// space-separated list of comparisons such as ">=0.33.0 <1.0.0" (the forms
// Tilt's version_settings takes that this Tiltfile uses).
func semverAdmits(constraint, version string) bool {
	parse := func(v string) [3]int {
		var p [3]int
		for i, f := range strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3) {
			fmt.Sscan(f, &p[i])
		}
		return p
	}
	cmp := func(a, b [3]int) int {
		for i := range a {
			if a[i] != b[i] {
				return a[i] - b[i]
			}
		}
		return 0
	}
	v := parse(version)
	for _, c := range strings.Fields(constraint) {
		op := strings.TrimRight(c, "0123456789.v")
		d := cmp(v, parse(strings.TrimPrefix(c, op)))
		ok := map[string]bool{">=": d >= 0, ">": d > 0, "<=": d <= 0, "<": d < 0, "=": d == 0, "": d == 0}[op]
		if !ok {
			return false
		}
	}
	return true
}

func TestSemverAdmits(t *testing.T) {
	for _, tt := range []struct {
		constraint, version string
		want                bool
	}{
		{">=0.33.0", "0.34.0", true},
		{">=0.35.0", "0.34.0", false},
		{">=0.33.0 <0.34.0", "0.34.0", false},
		{">0.33.9 <=0.34.0", "0.34.0", true},
		{"0.34.0", "0.34.0", true},
	} {
		if got := semverAdmits(tt.constraint, tt.version); got != tt.want {
			t.Errorf("semverAdmits(%q, %q) = %v", tt.constraint, tt.version, got)
		}
	}
}
