// Package app builds the controller process from its config: the
// controller-runtime manager (leader election, caches), the PlaybackStream
// reconciler, and one HTTP listener for /healthz, /readyz and /metrics.
package app

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/client/config"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"playpulse.dev/services/controller/api/v1alpha1"
	"playpulse.dev/services/controller/config"
	"playpulse.dev/services/controller/internal/controller"
	"playpulse.dev/services/playback/envconf"
	"playpulse.dev/services/playback/ops"
)

// inClusterNamespaceFile holds the pod's namespace in a cluster.
const inClusterNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// Run runs the controller until ctx ends. Errors that a person fixes in the
// configuration are *envconf.VarError (main exits 2 on them).
func Run(ctx context.Context, cfg *config.Config, log *slog.Logger) error {
	lg := logr.FromSlogHandler(log.Handler())
	ctrl.SetLogger(lg)
	klog.SetLogger(lg)

	restCfg, err := restConfig(cfg)
	if err != nil {
		return err
	}
	restCfg.UserAgent = "playpulse-controller"

	leNamespace := cfg.LeaderElectionNamespace
	if cfg.LeaderElect && leNamespace == "" {
		b, err := os.ReadFile(inClusterNamespaceFile)
		if err != nil {
			return envconf.Invalid("CONTROLLER_LEADER_ELECTION_NAMESPACE", "required outside a cluster when CONTROLLER_LEADER_ELECT is true (no %s)", inClusterNamespaceFile)
		}
		leNamespace = strings.TrimSpace(string(b))
	}

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return err
	}

	mode, err := topicMode(cfg, restCfg)
	if err != nil {
		return err
	}
	log.Info("topic mode", "mode", mode, "configured", cfg.TopicMode)

	cacheOpts := cache.Options{
		// Only the Deployments this controller made, not every Deployment
		// of the cluster.
		ByObject: map[client.Object]cache.ByObject{
			&appsv1.Deployment{}: {Label: labels.SelectorFromSet(labels.Set{"app.kubernetes.io/managed-by": "playpulse-controller"})},
		},
	}
	if nss := cfg.WatchedNamespaces(); len(nss) > 0 {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range nss {
			cacheOpts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	shutdown := 8 * time.Second
	mgr, err := ctrl.NewManager(restCfg, ctrl.Options{
		Scheme:                        scheme,
		Logger:                        lg,
		Cache:                         cacheOpts,
		Metrics:                       metricsserver.Options{BindAddress: "0"}, // served on CONTROLLER_ADDR below
		HealthProbeBindAddress:        "0",                                     // idem
		LeaderElection:                cfg.LeaderElect,
		LeaderElectionID:              cfg.LeaderElectionID,
		LeaderElectionNamespace:       leNamespace,
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       &shutdown,
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}

	sc, err := cfg.Config.Sarama()
	if err != nil {
		return err
	}
	opts := controller.Options{
		KafkaCluster:      cfg.KafkaCluster,
		DefaultBrokers:    cfg.BrokerList(),
		ProducerImage:     cfg.ProducerImage,
		MaxRatePerReplica: cfg.MaxRatePerReplica,
		TopicReadyTimeout: cfg.TopicReadyTimeout,
	}
	rec := mgr.GetEventRecorder(controller.EventSource)
	r := controller.NewStreamReconciler(mgr.GetClient(), rec, mode, controller.NewAdminFactory(sc), opts)
	if err := r.SetupWithManager(mgr, cfg.MaxConcurrentReconciles); err != nil {
		return fmt.Errorf("set up controller: %w", err)
	}

	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "playpulse_controller_info",
		Help: "Always 1; topic_mode is how topics are managed (Strimzi or Kafka).",
	}, []string{"topic_mode"})
	info.WithLabelValues(string(mode)).Set(1)
	// /metrics below serves controller-runtime's registry, not ops.Server's,
	// so the build-info gauge goes there too.
	for _, c := range []prometheus.Collector{info, ops.BuildInfo()} {
		if err := crmetrics.Registry.Register(c); err != nil {
			return err
		}
	}

	// /readyz: ready once the informers have synced (at once on a standby
	// replica, which starts no informers until it leads).
	var synced atomic.Bool
	if err := mgr.Add(nonLeaderRunnable(func(ctx context.Context) error {
		if mgr.GetCache().WaitForCacheSync(ctx) {
			synced.Store(true)
		}
		<-ctx.Done()
		return nil
	})); err != nil {
		return err
	}
	srv := ops.NewServer(log)
	srv.AddReadiness("cache", func() error {
		if !synced.Load() {
			return ops.NotReady("informer caches not synced yet")
		}
		return nil
	})
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(crmetrics.Registry, promhttp.HandlerOpts{Registry: crmetrics.Registry}))
	mux.Handle("/", srv.Handler())
	ln, err := ops.Listen(cfg.Addr)
	if err != nil {
		return err
	}
	httpDone := make(chan error, 1)
	go func() { httpDone <- ops.Serve(ctx, ln, mux, log) }()

	err = mgr.Start(ctx)
	if herr := <-httpDone; err == nil {
		err = herr
	}
	return err
}

// restConfig loads KUBECONFIG when set, else the in-cluster config (or
// ~/.kube/config).
func restConfig(cfg *config.Config) (*rest.Config, error) {
	if cfg.Kubeconfig != "" {
		rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
			&clientcmd.ClientConfigLoadingRules{ExplicitPath: cfg.Kubeconfig}, &clientcmd.ConfigOverrides{}).ClientConfig()
		if err != nil {
			return nil, envconf.Invalid("KUBECONFIG", "%v", err)
		}
		return rc, nil
	}
	rc, err := ctrlconfig.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("no Kubernetes API: not in a cluster and no KUBECONFIG: %w", err)
	}
	return rc, nil
}

// topicMode resolves CONTROLLER_TOPIC_MODE: auto means Strimzi when the API
// server serves kafkatopics.kafka.strimzi.io/v1 now.
func topicMode(cfg *config.Config, rc *rest.Config) (v1alpha1.TopicMode, error) {
	if cfg.TopicMode == config.TopicModeKafka {
		return v1alpha1.TopicModeKafka, nil
	}
	hc, err := rest.HTTPClientFor(rc)
	if err != nil {
		return "", err
	}
	mapper, err := apiutil.NewDynamicRESTMapper(rc, hc)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	gvk := controller.KafkaTopicGVK
	_, err = mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	switch {
	case err == nil:
		return v1alpha1.TopicModeStrimzi, nil
	case !meta.IsNoMatchError(err):
		return "", fmt.Errorf("discovery of %s: %w", gvk, err)
	case cfg.TopicMode == config.TopicModeStrimzi:
		return "", envconf.Invalid("CONTROLLER_TOPIC_MODE", "strimzi, but the API server has no kafkatopics.kafka.strimzi.io/v1: install Strimzi (1.0 or later) or use kafka")
	default:
		return v1alpha1.TopicModeKafka, nil
	}
}

type nonLeaderRunnable func(context.Context) error

func (f nonLeaderRunnable) Start(ctx context.Context) error { return f(ctx) }
func (nonLeaderRunnable) NeedLeaderElection() bool          { return false }
