package ops

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/playback/envconf"
)

// Version and Revision identify the build. They are variables, not
// constants, because the linker's -X flag can only set package-level string
// variables; the image builds (build/*.Dockerfile) and `make build` pass
//
//	-ldflags "-X playpulse.dev/services/playback/ops.Version=$VERSION
//	          -X playpulse.dev/services/playback/ops.Revision=$REVISION"
//
// and any other build (go run, go test) keeps these defaults. The linker
// ignores -X for a variable that does not exist, so tests/packaging checks
// that the Dockerfiles name these two.
var (
	Version  = "dev"
	Revision = "unknown"
)

// versionLine is what -h prints under its first line and what the startup
// log says.
func versionLine() string {
	return fmt.Sprintf("version %s, revision %s, %s", Version, Revision, runtime.Version())
}

// envconf prints -h before any service code runs, and it cannot import this
// package (this package imports it), so the version reaches it here: every
// service imports ops, whose init runs before main.
func init() { envconf.Version = versionLine() }

// serviceName is the name of the running command, from its main package
// path (playpulse.dev/services/fanout/cmd/fanout: "fanout"), so that the
// build-info gauge needs nothing from each service; a renamed binary keeps
// its name.
func serviceName() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Path != "" {
		return path.Base(bi.Path)
	}
	return filepath.Base(os.Args[0])
}

// BuildInfo returns the gauge playpulse_build_info{service, version,
// revision, goversion}, always 1: the Prometheus convention that lets any
// query join a series to the build that produced it. NewServer registers it;
// a service that serves /metrics from another registry (the controller, from
// controller-runtime's) registers it there.
func BuildInfo() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "playpulse_build_info",
		Help: "Always 1; the labels say which build of which service is running.",
		ConstLabels: prometheus.Labels{
			"service":   serviceName(),
			"version":   Version,
			"revision":  Revision,
			"goversion": runtime.Version(),
		},
	})
	g.Set(1)
	return g
}
