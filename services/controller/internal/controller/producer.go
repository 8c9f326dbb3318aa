package controller

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"playpulse.dev/services/controller/api/v1alpha1"
	"playpulse.dev/services/playback/sim"
)

// Producer pod constants.
const (
	producerContainer = "producer"
	producerPort      = 8081
	// producerUID is the image's numeric non-root user (build/producer.Dockerfile).
	producerUID = 65532
)

// producerEnv is the environment of a producer pod, in a fixed order. Every
// name is a variable the producer's config struct reads (a contract test in
// tests/controller checks it with envconf.Vars).
func producerEnv(s *v1alpha1.PlaybackStream, e effective) []corev1.EnvVar {
	env := []corev1.EnvVar{
		{Name: "KAFKA_BROKERS", Value: e.Brokers},
		{Name: "PRODUCER_TOPIC", Value: e.TopicName},
		{Name: "PRODUCER_RATE", Value: formatRate(e.Share)},
		{Name: "PRODUCER_STREAM", Value: s.Name},
		{Name: "PRODUCER_ADDR", Value: ":" + strconv.Itoa(producerPort)},
	}
	p := s.Spec.Profile
	if p.CatalogSize > 0 {
		env = append(env, corev1.EnvVar{Name: "PRODUCER_CATALOG_SIZE", Value: strconv.Itoa(int(p.CatalogSize))})
	}
	if p.ZipfAlpha > 0 {
		env = append(env, corev1.EnvVar{Name: "PRODUCER_ZIPF_ALPHA", Value: formatRate(p.ZipfAlpha)})
	}
	if m := p.DeviceMix; m != nil {
		env = append(env, corev1.EnvVar{Name: "PRODUCER_DEVICE_MIX", Value: fmt.Sprintf("tv:%d,mobile:%d,desktop:%d,tablet:%d", m.TV, m.Mobile, m.Desktop, m.Tablet)})
	}
	if p.StallIntensity != nil {
		env = append(env, corev1.EnvVar{Name: "PRODUCER_REBUFFER_RATIO", Value: formatRate(*p.StallIntensity)})
	}
	if p.StartFailureRate != nil {
		env = append(env, corev1.EnvVar{Name: "PRODUCER_START_FAILURE_RATE", Value: formatRate(*p.StartFailureRate)})
	}
	env = append(env, corev1.EnvVar{Name: "PRODUCER_SEED", Value: strconv.FormatInt(streamSeed(s), 10)})
	if len(e.Incidents) > 0 {
		env = append(env, corev1.EnvVar{Name: incidentsVar, Value: sim.FormatIncidents(e.Incidents)})
	}
	env = append(env, kafkaSecurity(s.Spec.Kafka).env...)
	return env
}

// Where the producer finds the Kafka credentials the stream names: each
// Secret is mounted read-only on its own path, projecting only the keys
// named, so the pod sees nothing else of it.
const (
	kafkaCAPath       = "/etc/playpulse/kafka/ca"
	kafkaUserPath     = "/etc/playpulse/kafka/user"
	kafkaPasswordPath = "/etc/playpulse/kafka/password"
)

// security is the part of a producer pod that spec.kafka.tls and
// spec.kafka.authentication add: variables of kafkacfg, and secret volumes.
type security struct {
	env     []corev1.EnvVar
	volumes []*corev1ac.VolumeApplyConfiguration
	mounts  []*corev1ac.VolumeMountApplyConfiguration
}

func kafkaSecurity(k v1alpha1.KafkaSpec) security {
	var sec security
	mount := func(name, secret, path string, keys ...string) {
		items := make([]*corev1ac.KeyToPathApplyConfiguration, len(keys))
		for i, k := range keys {
			items[i] = corev1ac.KeyToPath().WithKey(k).WithPath(k)
		}
		sec.volumes = append(sec.volumes, corev1ac.Volume().WithName(name).
			WithSecret(corev1ac.SecretVolumeSource().WithSecretName(secret).WithItems(items...).WithDefaultMode(0o440)))
		sec.mounts = append(sec.mounts, corev1ac.VolumeMount().WithName(name).WithMountPath(path).WithReadOnly(true))
	}
	add := func(name, value string) { sec.env = append(sec.env, corev1.EnvVar{Name: name, Value: value}) }
	if t := k.TLS; t != nil && len(t.TrustedCertificates) > 0 {
		c := t.TrustedCertificates[0]
		mount("kafka-ca", c.SecretName, kafkaCAPath, c.Certificate)
		add("KAFKA_TLS", "true")
		add("KAFKA_TLS_CA_FILE", kafkaCAPath+"/"+c.Certificate)
	}
	a := k.Authentication
	switch {
	case a == nil:
	case a.Type == "tls" && a.CertificateAndKey != nil:
		ck := a.CertificateAndKey
		mount("kafka-user", ck.SecretName, kafkaUserPath, ck.Certificate, ck.Key)
		add("KAFKA_TLS_CERT_FILE", kafkaUserPath+"/"+ck.Certificate)
		add("KAFKA_TLS_KEY_FILE", kafkaUserPath+"/"+ck.Key)
	case a.PasswordSecret != nil:
		ps := a.PasswordSecret
		mount("kafka-password", ps.SecretName, kafkaPasswordPath, ps.Password)
		add("KAFKA_SASL_MECHANISM", saslMechanisms[a.Type])
		add("KAFKA_SASL_USERNAME", a.Username)
		add("KAFKA_SASL_PASSWORD_FILE", kafkaPasswordPath+"/"+ps.Password)
	}
	return sec
}

// saslMechanisms maps the CRD's (Strimzi's) authentication types to
// KAFKA_SASL_MECHANISM.
var saslMechanisms = map[string]string{"scram-sha-512": "SCRAM-SHA-512", "scram-sha-256": "SCRAM-SHA-256", "plain": "PLAIN"}

// streamSeed is the simulator seed of a stream: spec.profile.seed when set,
// else one derived from the stream's UID. Derived, not random, because the
// seed is in the pod template: a new value on every reconcile would roll the
// producers each time. The UID (not the name) makes a stream deleted and
// created again a new audience. Replicas share the seed; the producer mixes
// its instance id in, so they still simulate different viewers.
func streamSeed(s *v1alpha1.PlaybackStream) int64 {
	if p := s.Spec.Profile.Seed; p != nil && *p > 0 {
		return *p
	}
	sum := sha256.Sum256([]byte(s.UID))
	// 63 bits, so that the value can be copied into spec.profile.seed
	// (an int64 ≥ 0) to reproduce the stream; never 0, which would ask
	// every producer to pick its own.
	return int64(max(binary.BigEndian.Uint64(sum[:8])>>1, 1))
}

// defaultResources fit one producer at a few thousand events/s: its memory
// is bounded by PRODUCER_MAX_SESSIONS and PRODUCER_MAX_BUFFERED.
func defaultResources() corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{
			corev1.ResourceCPU:    resource.MustParse("100m"),
			corev1.ResourceMemory: resource.MustParse("128Mi"),
		},
		Limits: corev1.ResourceList{
			corev1.ResourceMemory: resource.MustParse("512Mi"),
		},
	}
}

// buildDeployment returns the producer Deployment of a stream as an apply
// configuration. It is a pure function of the stream and the options: the
// same input gives byte-identical output, so re-applying changes nothing.
func buildDeployment(s *v1alpha1.PlaybackStream, e effective) *appsv1ac.DeploymentApplyConfiguration {
	res := defaultResources()
	if r := s.Spec.Producer.Resources; r != nil {
		res = *r.DeepCopy()
	}
	env := producerEnv(s, e)
	envAC := make([]*corev1ac.EnvVarApplyConfiguration, len(env))
	for i, v := range env {
		envAC[i] = corev1ac.EnvVar().WithName(v.Name).WithValue(v.Value)
	}
	probe := func(path string, period, failures int32) *corev1ac.ProbeApplyConfiguration {
		return corev1ac.Probe().
			WithHTTPGet(corev1ac.HTTPGetAction().WithPath(path).WithPort(intstr.FromString("http"))).
			WithPeriodSeconds(period).WithTimeoutSeconds(2).WithFailureThreshold(failures)
	}
	resAC := corev1ac.ResourceRequirements()
	if len(res.Requests) > 0 {
		resAC.WithRequests(res.Requests)
	}
	if len(res.Limits) > 0 {
		resAC.WithLimits(res.Limits)
	}
	sec := kafkaSecurity(s.Spec.Kafka)
	container := corev1ac.Container().
		WithName(producerContainer).
		WithImage(e.Image).
		WithImagePullPolicy(corev1.PullIfNotPresent).
		WithEnv(envAC...).
		WithPorts(corev1ac.ContainerPort().WithName("http").WithContainerPort(producerPort).WithProtocol(corev1.ProtocolTCP)).
		WithLivenessProbe(probe("/healthz", 10, 3)).
		WithReadinessProbe(probe("/readyz", 5, 3)).
		WithResources(resAC).
		WithVolumeMounts(sec.mounts...).
		WithSecurityContext(corev1ac.SecurityContext().
			WithRunAsNonRoot(true).
			WithAllowPrivilegeEscalation(false).
			WithReadOnlyRootFilesystem(true).
			WithCapabilities(corev1ac.Capabilities().WithDrop("ALL")).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault)))

	podSpec := corev1ac.PodSpec().
		WithContainers(container).
		WithVolumes(sec.volumes...).
		WithAutomountServiceAccountToken(false).
		WithEnableServiceLinks(false).
		// The producer flushes unacknowledged events for up to 8 s on SIGTERM.
		WithTerminationGracePeriodSeconds(15).
		WithSecurityContext(corev1ac.PodSecurityContext().
			WithRunAsNonRoot(true).
			WithRunAsUser(producerUID).
			WithRunAsGroup(producerUID).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault)))

	if len(sec.volumes) > 0 {
		// Secret files are mode 0440, group-owned by the fsGroup: readable
		// by the producer's user and no one else.
		podSpec.SecurityContext.WithFSGroup(producerUID)
	}

	template := corev1ac.PodTemplateSpec().
		WithLabels(objectLabels(s.Name, componentProducer)).
		WithAnnotations(map[string]string{
			"prometheus.io/scrape": "true",
			"prometheus.io/port":   strconv.Itoa(producerPort),
			"prometheus.io/path":   "/metrics",
		}).
		WithSpec(podSpec)
	// The hash covers everything in the pod template, so any change to the
	// effective configuration (rate, profile, image, resources) rolls the
	// pods at once, and nothing else does.
	template.WithAnnotations(map[string]string{v1alpha1.AnnotationConfigHash: configHash(template)})

	// Rate changes replace every pod at once (maxUnavailable and maxSurge
	// 100%): old pods stop generating on SIGTERM while new ones start with
	// the new share, so the stream's total rate moves in one step instead of
	// passing through a mix of old and new rates.
	all := intstr.FromString("100%")
	return appsv1ac.Deployment(e.Deployment, s.Namespace).
		WithLabels(objectLabels(s.Name, componentProducer)).
		WithOwnerReferences(ownerReference(s)).
		WithSpec(appsv1ac.DeploymentSpec().
			WithReplicas(e.Replicas).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels(s.Name))).
			WithStrategy(appsv1ac.DeploymentStrategy().
				WithType(appsv1.RollingUpdateDeploymentStrategyType).
				WithRollingUpdate(appsv1ac.RollingUpdateDeployment().WithMaxSurge(all).WithMaxUnavailable(all))).
			WithRevisionHistoryLimit(3).
			WithProgressDeadlineSeconds(120).
			WithTemplate(template))
}

// configHash is a short hash of a pod template.
func configHash(t *corev1ac.PodTemplateSpecApplyConfiguration) string {
	b, err := json.Marshal(t)
	if err != nil {
		panic(err) // only plain data: cannot fail
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

func ownerReference(s *v1alpha1.PlaybackStream) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(v1alpha1.GroupVersion.String()).
		WithKind("PlaybackStream").
		WithName(s.Name).
		WithUID(s.UID).
		WithController(true).
		WithBlockOwnerDeletion(true)
}

// producerState is what the producer reconciler did and saw.
type producerState struct {
	// Held is set when the Deployment was not applied, with the reason and
	// message why (e.g. the topic is not ready yet).
	Held        bool
	HeldReason  string
	HeldMessage string

	Exists     bool
	Name       string
	Desired    int32
	Replicas   int32 // pods that exist (status.replicas)
	Updated    int32 // pods with the current template
	Ready      int32
	Available  int32
	Current    bool // the Deployment controller has seen the latest spec
	FailReason string
	FailMsg    string
	Hash       string
	// Changed: this reconcile changed the pod template (a rollout starts).
	Changed bool
	// Created: this reconcile created the Deployment.
	Created bool
	// Incidents are the stream's incidents with the windows the producers
	// run them in (resolveIncidents).
	Incidents []sim.Incident
}

// producerReconciler applies the producer Deployment.
type producerReconciler struct {
	client client.Client
	opts   Options
	clock  clock.PassiveClock // when an incident without a start begins
}

// ensure applies the Deployment when the topic is ready (or the Deployment
// already exists: a topic that turns not-ready later, e.g. after a failed
// partition change, must not stop producers that work), and reports its state.
func (r *producerReconciler) ensure(ctx context.Context, s *v1alpha1.PlaybackStream, e effective, topicReady bool) (producerState, error) {
	st := producerState{Name: e.Deployment, Desired: e.Replicas}
	var cur appsv1.Deployment
	err := r.client.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: e.Deployment}, &cur)
	switch {
	case apierrors.IsNotFound(err):
		e.Incidents = resolveIncidents(s.Spec.Incidents, nil, r.clock.Now())
		st.Incidents = e.Incidents
	case err != nil:
		return st, fmt.Errorf("get deployment %s: %w", e.Deployment, err)
	default:
		st.Exists = true
		e.Incidents = resolveIncidents(s.Spec.Incidents, deployedIncidents(&cur), r.clock.Now())
		st.Incidents = e.Incidents
		if owner := controllerUID(&cur); owner != s.UID {
			st.Held = true
			st.HeldReason = v1alpha1.ReasonApplyFailed
			st.HeldMessage = fmt.Sprintf("Deployment %s/%s already exists and is not controlled by this PlaybackStream; delete or rename it", s.Namespace, e.Deployment)
			st.Exists = false
			return st, nil
		}
	}
	if e.Replicas > 0 && e.Share > float64(r.opts.MaxRatePerReplica) {
		need := (e.Rate + int64(r.opts.MaxRatePerReplica) - 1) / int64(r.opts.MaxRatePerReplica)
		st.Held = true
		st.HeldReason = v1alpha1.ReasonRateAboveReplicaLimit
		st.HeldMessage = fmt.Sprintf("eventsPerSecond %d over %d replicas is %s events/s per producer, above this controller's limit of %d (CONTROLLER_MAX_RATE_PER_REPLICA): set replicas to at least %d",
			e.Rate, e.Replicas, formatRate(e.Share), r.opts.MaxRatePerReplica, need)
		if st.Exists {
			observeDeployment(&st, &cur)
		}
		return st, nil
	}
	if !st.Exists && !topicReady {
		st.Held = true
		st.HeldReason = v1alpha1.ReasonWaitingForTopic
		st.HeldMessage = "the producers start once the topic is ready (see the TopicReady condition)"
		return st, nil
	}
	prevHash := ""
	if st.Exists {
		prevHash = cur.Spec.Template.Annotations[v1alpha1.AnnotationConfigHash]
	}
	ac := buildDeployment(s, e)
	if err := r.client.Apply(ctx, ac, client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		st.Held = true
		st.HeldReason = v1alpha1.ReasonApplyFailed
		st.HeldMessage = fmt.Sprintf("applying Deployment %s/%s failed: %v", s.Namespace, e.Deployment, err)
		return st, fmt.Errorf("apply deployment %s: %w", e.Deployment, err)
	}
	var applied appsv1.Deployment
	if err := convert(ac, &applied); err != nil {
		return st, err
	}
	st.Created = !st.Exists
	st.Exists = true
	observeDeployment(&st, &applied)
	st.Changed = prevHash != "" && prevHash != st.Hash
	return st, nil
}

func observeDeployment(st *producerState, d *appsv1.Deployment) {
	st.Hash = d.Spec.Template.Annotations[v1alpha1.AnnotationConfigHash]
	if d.Spec.Replicas != nil {
		st.Desired = *d.Spec.Replicas
	}
	st.Replicas = d.Status.Replicas
	st.Updated = d.Status.UpdatedReplicas
	st.Ready = d.Status.ReadyReplicas
	st.Available = d.Status.AvailableReplicas
	st.Current = d.Status.ObservedGeneration >= d.Generation
	for _, c := range d.Status.Conditions {
		switch {
		case c.Type == appsv1.DeploymentReplicaFailure && c.Status == corev1.ConditionTrue:
			st.FailReason, st.FailMsg = v1alpha1.ReasonReplicaFailure, c.Message
		case c.Type == appsv1.DeploymentProgressing && c.Status == corev1.ConditionFalse && c.Reason == "ProgressDeadlineExceeded":
			if st.FailReason == "" {
				st.FailReason, st.FailMsg = v1alpha1.ReasonProgressDeadlineExceeded, c.Message
			}
		}
	}
}

// convert copies one API object representation into another through JSON.
func convert(from, to any) error {
	b, err := json.Marshal(from)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, to)
}
