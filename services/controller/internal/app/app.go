// Package app builds the controller from its resolved configuration and
// runs it: the controller-runtime manager (leader election, caches), the
// PlaybackStream reconciler, the QoEAlert rules reconciler and status
// poller, and one HTTP listener for /healthz, /readyz and /metrics.
package app

import (
	"context"
	"fmt"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"playpulse.dev/services/controller/api/v1alpha1"
	"playpulse.dev/services/controller/internal/controller"
	"playpulse.dev/services/controller/pkg/config"
	"playpulse.dev/services/playback/envconf"
	"playpulse.dev/services/playback/kafkacfg"
	"playpulse.dev/services/playback/ops"
)

// App is one controller process.
type App struct {
	cfg  config.Resolved
	mgr  manager.Manager
	http http.Handler
}

// New builds the controller. It asks the API server once whether Strimzi's
// KafkaTopic is served (CONTROLLER_TOPIC_MODE=auto or strimzi), so it fails
// when the API server cannot be reached.
func New(cfg config.Resolved) (*App, error) {
	lg := logr.FromSlogHandler(cfg.Log.Handler())
	ctrl.SetLogger(lg)
	klog.SetLogger(lg)

	mode, err := topicMode(cfg.TopicMode, cfg.Rest)
	if err != nil {
		return nil, err
	}
	cfg.Log.Info("topic mode", "mode", mode, "configured", cfg.TopicMode)
	mgr, err := newManager(cfg, lg)
	if err != nil {
		return nil, err
	}
	opts := controller.Options{
		KafkaCluster:      cfg.KafkaCluster,
		DefaultBrokers:    cfg.Brokers,
		ProducerImage:     cfg.ProducerImage,
		MaxRatePerReplica: cfg.MaxRatePerReplica,
		TopicReadyTimeout: cfg.TopicReadyTimeout,
		Explain:           cfg.Explain,
	}
	rec := mgr.GetEventRecorder(controller.EventSource)
	r := controller.NewStreamReconciler(mgr.GetClient(), rec, mode, controller.NewAdminFactory(cfg.Sarama), opts)
	if err := r.SetupWithManager(mgr, cfg.MaxConcurrentReconciles); err != nil {
		return nil, fmt.Errorf("set up controller: %w", err)
	}
	if err := controller.NewAlertRulesReconciler(mgr.GetClient(), cfg.AlertRulesConfigMap, cfg.FanoutNamespace).SetupWithManager(mgr); err != nil {
		return nil, fmt.Errorf("set up QoEAlert controller: %w", err)
	}
	if cfg.FanoutURL != "" {
		poll := controller.NewAlertStatusPoller(mgr.GetClient(), cfg.FanoutURL, cfg.FanoutToken, cfg.FanoutNamespace,
			cfg.AlertStatusInterval, clock.RealClock{}, lg.WithName("qoealert-status"))
		if err := mgr.Add(poll); err != nil {
			return nil, err
		}
	}
	h, err := opsHandler(cfg, mgr, mode)
	if err != nil {
		return nil, err
	}
	return &App{cfg: cfg, mgr: mgr, http: h}, nil
}

// Run listens on CONTROLLER_ADDR and runs the manager until ctx ends.
func (a *App) Run(ctx context.Context) error {
	ln, err := ops.Listen(a.cfg.Addr)
	if err != nil {
		return err
	}
	httpDone := make(chan error, 1)
	go func() { httpDone <- ops.Serve(ctx, ln, a.http, a.cfg.Log) }()
	err = a.mgr.Start(ctx)
	if herr := <-httpDone; err == nil {
		err = herr
	}
	return err
}

// newManager makes the controller-runtime manager: the scheme, the caches
// (only the watched namespaces, only the Deployments this controller made)
// and leader election. Its own metrics and probe servers are off: /metrics
// and the probes are served on CONTROLLER_ADDR (opsHandler).
func newManager(cfg config.Resolved, lg logr.Logger) (manager.Manager, error) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	cacheOpts := cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&appsv1.Deployment{}: {Label: labels.SelectorFromSet(labels.Set{controller.LabelManagedBy: controller.ManagedBy})},
			&corev1.ConfigMap{}:  {Label: labels.SelectorFromSet(labels.Set{controller.LabelManagedBy: controller.ManagedBy})},
		},
	}
	if len(cfg.Namespaces) > 0 {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range cfg.Namespaces {
			cacheOpts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	shutdown := 8 * time.Second
	mgr, err := ctrl.NewManager(cfg.Rest, ctrl.Options{
		Scheme:                        scheme,
		Logger:                        lg,
		Cache:                         cacheOpts,
		Metrics:                       metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress:        "0",
		LeaderElection:                cfg.LeaderElect,
		LeaderElectionID:              cfg.LeaderElectionID,
		LeaderElectionNamespace:       cfg.LeaseNamespace,
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       &shutdown,
	})
	if err != nil {
		return nil, fmt.Errorf("create manager: %w", err)
	}
	return mgr, nil
}

// kafkaProbeEvery is how often the controller checks, in Kafka mode, that
// KAFKA_BROKERS answers with its credentials: a metadata request, cheap for
// the brokers, and often enough that a fixed secret turns the controller
// ready within seconds.
const kafkaProbeEvery = 5 * time.Second

// opsHandler serves /healthz, /readyz (ready once the informers have
// synced, at once on a standby replica, which starts no informers until it
// leads) and /metrics from controller-runtime's registry, where the
// build-info and topic-mode gauges go too.
func opsHandler(cfg config.Resolved, mgr manager.Manager, mode v1alpha1.TopicMode) (http.Handler, error) {
	info := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "playpulse_controller_info",
		Help: "Always 1; topic_mode is how topics are managed (Strimzi or Kafka).",
	}, []string{"topic_mode"})
	info.WithLabelValues(string(mode)).Set(1)
	for _, c := range []prometheus.Collector{info, ops.BuildInfo()} {
		if err := crmetrics.Registry.Register(c); err != nil {
			return nil, err
		}
	}
	var synced atomic.Bool
	if err := mgr.Add(nonLeaderRunnable(func(ctx context.Context) error {
		if mgr.GetCache().WaitForCacheSync(ctx) {
			synced.Store(true)
		}
		<-ctx.Done()
		return nil
	})); err != nil {
		return nil, err
	}
	srv := ops.NewServer(cfg.Log)
	srv.AddReadiness("cache", func() error {
		if !synced.Load() {
			return ops.NotReady("informer caches not synced yet")
		}
		return nil
	})
	if mode == v1alpha1.TopicModeKafka {
		// In Kafka mode the controller's own credentials make the topics:
		// readiness says whether they work, and why not (every replica
		// probes, the standby too, so a bad secret shows before it leads).
		probe := kafkacfg.NewProbe(cfg.Sarama, cfg.Brokers, cfg.NewHealth(cfg.Log, crmetrics.Registry), kafkaProbeEvery)
		if err := mgr.Add(nonLeaderRunnable(probe.Run)); err != nil {
			return nil, err
		}
		srv.AddReadiness("kafka", probe.Ready)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(crmetrics.Registry, promhttp.HandlerOpts{Registry: crmetrics.Registry}))
	mux.Handle("/", srv.Handler())
	return mux, nil
}

// topicMode resolves CONTROLLER_TOPIC_MODE: auto means Strimzi when the API
// server serves kafkatopics.kafka.strimzi.io/v1 now. It needs the API
// server, so it runs here rather than in the configuration's resolve step;
// strimzi on a cluster without Strimzi is still reported by variable.
func topicMode(configured string, rc *rest.Config) (v1alpha1.TopicMode, error) {
	if configured == config.TopicModeKafka {
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
	case configured == config.TopicModeStrimzi:
		return "", envconf.Invalid("CONTROLLER_TOPIC_MODE", "strimzi, but the API server has no kafkatopics.kafka.strimzi.io/v1: install Strimzi (1.0 or later) or use kafka")
	default:
		return v1alpha1.TopicModeKafka, nil
	}
}

type nonLeaderRunnable func(context.Context) error

func (f nonLeaderRunnable) Start(ctx context.Context) error { return f(ctx) }
func (nonLeaderRunnable) NeedLeaderElection() bool          { return false }
