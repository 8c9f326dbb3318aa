package controller

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"playpulse.dev/services/controller/api/v1alpha1"
	"playpulse.dev/services/playback/sim"
	producercfg "playpulse.dev/services/producer/pkg/config"
)

// TestCRDDefaults: an empty spec gets every default from the API server,
// and the simulator defaults are exactly the producer's own.
func TestCRDDefaults(t *testing.T) {
	p := controlPlane(t, false)
	ns := p.namespace(t)
	p.kubectl(t, "apiVersion: playpulse.dev/v1alpha1\nkind: PlaybackStream\nmetadata:\n  name: empty\n  namespace: "+ns+"\n", "apply", "--server-side", "-f", "-")
	var s v1alpha1.PlaybackStream
	if err := p.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "empty"}, &s); err != nil {
		t.Fatal(err)
	}
	sp := s.Spec
	if sp.EventsPerSecond != 100 || sp.Replicas != 1 || sp.Topic.Partitions != 3 || sp.Topic.DeletionPolicy != v1alpha1.DeletionPolicyRetain {
		t.Errorf("defaults: eventsPerSecond %d replicas %d partitions %d deletionPolicy %q; want 100 1 3 Retain",
			sp.EventsPerSecond, sp.Replicas, sp.Topic.Partitions, sp.Topic.DeletionPolicy)
	}
	d := sim.DefaultConfig()
	pr := sp.Profile
	if pr.DeviceMix == nil || pr.StallIntensity == nil || pr.StartFailureRate == nil {
		t.Fatalf("profile defaults missing: %+v", pr)
	}
	mix := fmt.Sprintf("tv:%.2f,mobile:%.2f,desktop:%.2f,tablet:%.2f",
		float64(pr.DeviceMix.TV)/100, float64(pr.DeviceMix.Mobile)/100, float64(pr.DeviceMix.Desktop)/100, float64(pr.DeviceMix.Tablet)/100)
	for _, c := range []struct {
		knob      string
		crd, prod any
	}{
		{"catalogSize", int(pr.CatalogSize), d.CatalogSize},
		{"zipfAlpha", pr.ZipfAlpha, d.ZipfAlpha},
		{"stallIntensity", *pr.StallIntensity, d.RebufferRatio},
		{"startFailureRate", *pr.StartFailureRate, d.StartFailureRate},
		{"deviceMix", mix, d.DeviceMix},
	} {
		if c.crd != c.prod {
			t.Errorf("CRD default of profile.%s is %v, the producer's is %v", c.knob, c.crd, c.prod)
		}
	}
	if pr.Seed != nil {
		t.Errorf("profile.seed defaults to %d, want unset (the controller derives one per stream)", *pr.Seed)
	}
}

// TestPerReplicaLimitMatchesProducer: the per-pod limit of the CRD's CEL
// rule (and of CONTROLLER_MAX_RATE_PER_REPLICA) is the rate up to which the
// producer is proven accurate, and one the producer accepts.
func TestPerReplicaLimitMatchesProducer(t *testing.T) {
	if v1alpha1.MaxEventsPerSecondPerReplica != producercfg.AccurateRate {
		t.Errorf("v1alpha1.MaxEventsPerSecondPerReplica = %d, producer config.AccurateRate = %d", v1alpha1.MaxEventsPerSecondPerReplica, producercfg.AccurateRate)
	}
	if v1alpha1.MaxEventsPerSecondPerReplica > producercfg.MaxRate {
		t.Errorf("v1alpha1.MaxEventsPerSecondPerReplica = %d is above the producer's PRODUCER_RATE maximum %d", v1alpha1.MaxEventsPerSecondPerReplica, producercfg.MaxRate)
	}
}

func stream(ns, name string, mutate func(*v1alpha1.PlaybackStream)) *v1alpha1.PlaybackStream {
	s := &v1alpha1.PlaybackStream{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.PlaybackStreamSpec{EventsPerSecond: 100, Replicas: 1},
	}
	if mutate != nil {
		mutate(s)
	}
	return s
}

// TestInvalidSpecsAreRefused: the API server refuses bad specs with a
// message that names the field and says what to do; nothing reaches the
// controller.
func TestInvalidSpecsAreRefused(t *testing.T) {
	p := controlPlane(t, false)
	ns := p.namespace(t)
	ctx := context.Background()
	f64 := func(v float64) *float64 { return &v }

	creates := []struct {
		name   string
		mutate func(*v1alpha1.PlaybackStream)
		want   []string
	}{
		{"negative rate", func(s *v1alpha1.PlaybackStream) { s.Spec.EventsPerSecond = -5 },
			[]string{"spec.eventsPerSecond", "greater than or equal to 0"}},
		{"unknown deletion policy", func(s *v1alpha1.PlaybackStream) { s.Spec.Topic.DeletionPolicy = "Destroy" },
			[]string{"spec.topic.deletionPolicy", `Unsupported value: "Destroy"`, `"Retain"`, `"Delete"`}},
		{"rate above what the replicas can send", func(s *v1alpha1.PlaybackStream) { s.Spec.EventsPerSecond, s.Spec.Replicas = 120000, 2 },
			[]string{"eventsPerSecond 120000 needs at least 3 replicas", "at most 50000 events/s", "replicas is 2"}},
		{"rate with zero replicas", func(s *v1alpha1.PlaybackStream) { s.Spec.EventsPerSecond, s.Spec.Replicas = 10, 0 },
			[]string{"needs at least 1 replicas"}},
		{"too many replicas", func(s *v1alpha1.PlaybackStream) { s.Spec.Replicas = 101 },
			[]string{"spec.replicas", "less than or equal to 100"}},
		{"topic name with a space", func(s *v1alpha1.PlaybackStream) { s.Spec.Topic.Name = "bad topic" },
			[]string{"spec.topic.name", "should match"}},
		{"zero partitions", func(s *v1alpha1.PlaybackStream) { s.Spec.Topic.Partitions = -1 },
			[]string{"spec.topic.partitions", "greater than or equal to 1"}},
		{"zipf alpha zero", func(s *v1alpha1.PlaybackStream) { s.Spec.Profile.ZipfAlpha = -0.5 },
			[]string{"spec.profile.zipfAlpha", "greater than 0"}},
		{"stall intensity too high", func(s *v1alpha1.PlaybackStream) { s.Spec.Profile.StallIntensity = f64(0.9) },
			[]string{"spec.profile.stallIntensity", "less than or equal to 0.3"}},
		{"no device", func(s *v1alpha1.PlaybackStream) { s.Spec.Profile.DeviceMix = &v1alpha1.DeviceMix{} },
			[]string{"spec.profile.deviceMix", "at least one device with a positive weight"}},
		{"retention too short", func(s *v1alpha1.PlaybackStream) {
			s.Spec.Topic.Retention = &metav1.Duration{Duration: 30e9}
		}, []string{"spec.topic.retention", "at least 1m"}},
		{"name longer than a label value", func(s *v1alpha1.PlaybackStream) { s.Name = strings.Repeat("a", 64) },
			[]string{"metadata.name must be at most 63 characters"}},
		{"unknown authentication type", func(s *v1alpha1.PlaybackStream) {
			s.Spec.Kafka.Authentication = &v1alpha1.KafkaAuthentication{Type: "oauth", Username: "u", PasswordSecret: &v1alpha1.PasswordSecretSource{SecretName: "s", Password: "p"}}
		}, []string{"spec.kafka.authentication.type", `Unsupported value: "oauth"`}},
		{"scram without its password", func(s *v1alpha1.PlaybackStream) {
			s.Spec.Kafka.Authentication = &v1alpha1.KafkaAuthentication{Type: "scram-sha-512", Username: "u"}
		}, []string{"spec.kafka.authentication", "need username and passwordSecret"}},
		{"mutual TLS without a trusted CA", func(s *v1alpha1.PlaybackStream) {
			s.Spec.Kafka.Authentication = &v1alpha1.KafkaAuthentication{Type: "tls", CertificateAndKey: &v1alpha1.CertAndKeySecretSource{SecretName: "u", Certificate: "user.crt", Key: "user.key"}}
		}, []string{"spec.kafka", "set kafka.tls.trustedCertificates too"}},
		{"two trusted certificates", func(s *v1alpha1.PlaybackStream) {
			c := v1alpha1.CertSecretSource{SecretName: "ca", Certificate: "ca.crt"}
			s.Spec.Kafka.TLS = &v1alpha1.KafkaTLS{TrustedCertificates: []v1alpha1.CertSecretSource{c, c}}
		}, []string{"spec.kafka.tls.trustedCertificates", "must have at most 1 item"}},
		{"incident of two kinds", incident(v1alpha1.Incident{Name: "x", Duration: minutes(5),
			ErrorBurst: &v1alpha1.ErrorBurst{Device: "tv"}, FlashCrowd: &v1alpha1.FlashCrowd{}}),
			[]string{"spec.incidents[0]", "exactly one of cdnDegradation, errorBurst or flashCrowd"}},
		{"incident of no kind", incident(v1alpha1.Incident{Name: "x", Duration: minutes(5)}),
			[]string{"exactly one of cdnDegradation, errorBurst or flashCrowd"}},
		{"incident on an unknown CDN", incident(v1alpha1.Incident{Name: "x", Duration: minutes(5), CDNDegradation: &v1alpha1.CDNDegradation{CDN: "limelight"}}),
			[]string{"spec.incidents[0].cdnDegradation.cdn", `Unsupported value: "limelight"`, `"fastly"`}},
		{"bitrate factor above 1", incident(v1alpha1.Incident{Name: "x", Duration: minutes(5), CDNDegradation: &v1alpha1.CDNDegradation{CDN: "fastly", BitrateFactor: 2}}),
			[]string{"spec.incidents[0].cdnDegradation.bitrateFactor", "less than or equal to 1"}},
		{"error burst on a toaster", incident(v1alpha1.Incident{Name: "x", Duration: minutes(5), ErrorBurst: &v1alpha1.ErrorBurst{Device: "toaster"}}),
			[]string{"spec.incidents[0].errorBurst.device", `Unsupported value: "toaster"`}},
		{"incident too short", incident(v1alpha1.Incident{Name: "x", Duration: metav1.Duration{Duration: 5e9}, FlashCrowd: &v1alpha1.FlashCrowd{}}),
			[]string{"spec.incidents[0].duration", "between 10s and 24h"}},
		{"incident named in capitals", incident(v1alpha1.Incident{Name: "Crowd", Duration: minutes(5), FlashCrowd: &v1alpha1.FlashCrowd{}}),
			[]string{"spec.incidents[0].name", "should match"}},
		{"two incidents of one name", incident(
			v1alpha1.Incident{Name: "x", Duration: minutes(5), FlashCrowd: &v1alpha1.FlashCrowd{}},
			v1alpha1.Incident{Name: "x", Duration: minutes(9), FlashCrowd: &v1alpha1.FlashCrowd{}}),
			[]string{"spec.incidents[1]", "Duplicate value"}},
		{"flash crowd beyond what the replicas send", func(s *v1alpha1.PlaybackStream) {
			s.Spec.EventsPerSecond = 40000
			incident(v1alpha1.Incident{Name: "x", Duration: minutes(5), FlashCrowd: &v1alpha1.FlashCrowd{Factor: 2}})(s)
		}, []string{"eventsPerSecond × factor must stay within replicas × 50000"}},
		{"seventeen incidents", func(s *v1alpha1.PlaybackStream) {
			for i := range v1alpha1.MaxIncidents + 1 {
				s.Spec.Incidents = append(s.Spec.Incidents, v1alpha1.Incident{Name: fmt.Sprintf("i%d", i), Duration: minutes(5), FlashCrowd: &v1alpha1.FlashCrowd{}})
			}
		}, []string{"spec.incidents", "must have at most 16 items"}},
	}
	for i, c := range creates {
		t.Run("create/"+c.name, func(t *testing.T) {
			s := stream(ns, fmt.Sprintf("bad-%d", i), c.mutate)
			err := p.c.Create(ctx, s)
			requireInvalid(t, err, c.want...)
		})
	}

	t.Run("secured Kafka specs are accepted", func(t *testing.T) {
		ca := &v1alpha1.KafkaTLS{TrustedCertificates: []v1alpha1.CertSecretSource{{SecretName: "playpulse-cluster-ca-cert", Certificate: "ca.crt"}}}
		for name, k := range map[string]v1alpha1.KafkaSpec{
			"good-mtls": {TLS: ca, Authentication: &v1alpha1.KafkaAuthentication{Type: "tls",
				CertificateAndKey: &v1alpha1.CertAndKeySecretSource{SecretName: "viewer", Certificate: "user.crt", Key: "user.key"}}},
			"good-scram": {TLS: ca, Authentication: &v1alpha1.KafkaAuthentication{Type: "scram-sha-512", Username: "viewer",
				PasswordSecret: &v1alpha1.PasswordSecretSource{SecretName: "viewer", Password: "password"}}},
		} {
			if err := p.c.Create(ctx, stream(ns, name, func(s *v1alpha1.PlaybackStream) { s.Spec.Kafka = k })); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	})

	t.Run("incidents are accepted and defaulted", func(t *testing.T) {
		start := metav1.NewTime(time.Date(2026, 12, 5, 21, 0, 0, 0, time.UTC))
		s := stream(ns, "rehearsal", incident(
			v1alpha1.Incident{Name: "fastly-slow", Start: &start, Duration: minutes(10), CDNDegradation: &v1alpha1.CDNDegradation{CDN: "fastly"}},
			v1alpha1.Incident{Name: "tv-errors", Duration: minutes(5), ErrorBurst: &v1alpha1.ErrorBurst{Device: "tv"}},
			v1alpha1.Incident{Name: "crowd", Duration: minutes(15), FlashCrowd: &v1alpha1.FlashCrowd{}}))
		if err := p.c.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
		in := s.Spec.Incidents
		if c := in[0].CDNDegradation; c.StallFactor != 5 || c.BitrateFactor != 0.5 || c.StartupFactor != 2 || in[1].ErrorBurst.Factor != 20 || in[2].FlashCrowd.Factor != 3 {
			t.Errorf("incident defaults: %+v %+v %+v", *in[0].CDNDegradation, *in[1].ErrorBurst, *in[2].FlashCrowd)
		}
		if d := sim.DefaultConfig(); d.Incidents != "" {
			t.Errorf("the simulator has incidents by default: %q", d.Incidents)
		}
	})

	t.Run("kubectl shows the reason", func(t *testing.T) {
		yaml := "apiVersion: playpulse.dev/v1alpha1\nkind: PlaybackStream\nmetadata:\n  name: typo\n  namespace: " + ns +
			"\nspec:\n  eventsPerSecond: 150000\n  replicas: 1\n"
		_, stderr, err := p.kubectlRun(yaml, "apply", "-f", "-")
		if err == nil || !strings.Contains(stderr, "eventsPerSecond 150000 needs at least 3 replicas") {
			t.Fatalf("kubectl apply: err %v, stderr %q", err, stderr)
		}
		yaml = strings.Replace(yaml, "eventsPerSecond: 150000", "eventsPerSec: 300", 1)
		_, stderr, err = p.kubectlRun(yaml, "apply", "-f", "-")
		if err == nil || !strings.Contains(stderr, `unknown field "spec.eventsPerSec"`) {
			t.Fatalf("kubectl apply with a misspelt field: err %v, stderr %q", err, stderr)
		}
	})

	// Updates: rules that compare with the stored object.
	s := stream(ns, "good", func(s *v1alpha1.PlaybackStream) {
		s.Spec.EventsPerSecond, s.Spec.Replicas, s.Spec.Topic.Partitions = 120000, 3, 6
	})
	if err := p.c.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	updates := []struct {
		name   string
		mutate func(*v1alpha1.PlaybackStream)
		want   []string
	}{
		{"partitions decrease", func(s *v1alpha1.PlaybackStream) { s.Spec.Topic.Partitions = 3 },
			[]string{"topic.partitions cannot decrease from 6 to 3", "Kafka cannot remove partitions"}},
		{"topic renamed", func(s *v1alpha1.PlaybackStream) { s.Spec.Topic.Name = "elsewhere" },
			[]string{"topic.name cannot change"}},
		{"cluster changed", func(s *v1alpha1.PlaybackStream) { s.Spec.Kafka.Cluster = "other" },
			nil}, // from unset to set is allowed; changing it again is not (below)
		{"cluster changed again", func(s *v1alpha1.PlaybackStream) { s.Spec.Kafka.Cluster = "third" },
			[]string{"kafka.cluster cannot change once set"}},
		{"scaled below the rate", func(s *v1alpha1.PlaybackStream) { s.Spec.Replicas = 2 },
			[]string{"eventsPerSecond 120000 needs at least 3 replicas", "replicas is 2"}},
	}
	for _, c := range updates {
		t.Run("update/"+c.name, func(t *testing.T) {
			var cur v1alpha1.PlaybackStream
			if err := p.c.Get(ctx, client.ObjectKeyFromObject(s), &cur); err != nil {
				t.Fatal(err)
			}
			c.mutate(&cur)
			err := p.c.Update(ctx, &cur)
			if c.want == nil {
				if err != nil {
					t.Fatalf("update refused: %v", err)
				}
				return
			}
			requireInvalid(t, err, c.want...)
		})
	}

	t.Run("kubectl scale below the rate", func(t *testing.T) {
		_, stderr, err := p.kubectlRun("", "-n", ns, "scale", "playbackstream/good", "--replicas=1")
		if err == nil || !strings.Contains(stderr, "needs at least 3 replicas") {
			t.Fatalf("kubectl scale: err %v, stderr %q", err, stderr)
		}
	})
}

func minutes(n int) metav1.Duration { return metav1.Duration{Duration: time.Duration(n) * time.Minute} }

func incident(list ...v1alpha1.Incident) func(*v1alpha1.PlaybackStream) {
	return func(s *v1alpha1.PlaybackStream) { s.Spec.Incidents = append(s.Spec.Incidents, list...) }
}

func requireInvalid(t *testing.T, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want refused with %q", want)
	}
	if !apierrors.IsInvalid(err) {
		t.Fatalf("error is not Invalid (422): %v", err)
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("message does not contain %q:\n%v", w, err)
		}
	}
}

// TestSamplesAreAccepted: the sample streams and alerts in k8s/samples pass the CRDs'
// validation as they are, through kubectl with strict field validation.
func TestSamplesAreAccepted(t *testing.T) {
	p := controlPlane(t, false)
	ns := p.namespace(t)
	out := p.kubectl(t, "", "-n", ns, "apply", "--dry-run=server", "--validate=strict", "-f", repoPath("k8s/samples"))
	for _, name := range []string{"playbackstream.playpulse.dev/quiet", "playbackstream.playpulse.dev/prime-time", "playbackstream.playpulse.dev/spike",
		"qoealert.playpulse.dev/playback-failures", "qoealert.playpulse.dev/startup-time", "qoealert.playpulse.dev/rebuffering", "qoealert.playpulse.dev/viewers-dropped"} {
		if !strings.Contains(out, name+" created (server dry run)") {
			t.Errorf("sample %s not accepted: %s", name, out)
		}
	}
}

func qoeAlert(ns, name string, mutate func(*v1alpha1.QoEAlert)) *v1alpha1.QoEAlert {
	a := &v1alpha1.QoEAlert{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.QoEAlertSpec{
			Metric: "playback_failure_pct", Condition: "Above", Threshold: resource.MustParse("5"),
		},
	}
	if mutate != nil {
		mutate(a)
	}
	return a
}

// TestInvalidQoEAlertsAreRefused: the CRD refuses every rule the fan-out
// would refuse, because the controller renders all of a namespace's
// QoEAlerts into one file and one bad rule would make the fan-out keep its
// old rules (or not start).
func TestInvalidQoEAlertsAreRefused(t *testing.T) {
	p := controlPlane(t, false)
	ns := p.namespace(t)
	ctx := context.Background()
	dur := func(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

	for i, c := range []struct {
		name   string
		mutate func(*v1alpha1.QoEAlert)
		want   []string
	}{
		{"stream and overall", func(a *v1alpha1.QoEAlert) { a.Spec.Stream, a.Spec.Overall = "live", true },
			[]string{"spec", "set either stream or overall, not both"}},
		{"baseline shorter than the window", func(a *v1alpha1.QoEAlert) {
			a.Spec.Baseline, a.Spec.Window = dur(2*time.Minute), dur(5*time.Minute)
		}, []string{"spec", "baseline must be at least the window"}},
		{"unknown metric", func(a *v1alpha1.QoEAlert) { a.Spec.Metric = "buffering_ratio" },
			[]string{"spec.metric", `Unsupported value: "buffering_ratio"`, `"rebuffer_pct"`}},
		{"window too long", func(a *v1alpha1.QoEAlert) { a.Spec.Window = dur(11 * time.Minute) },
			[]string{"spec.window", "window must be from 10s to 10m"}},
		{"window too short", func(a *v1alpha1.QoEAlert) { a.Spec.Window = dur(5 * time.Second) },
			[]string{"spec.window", "window must be from 10s to 10m"}},
		{"lower-case condition", func(a *v1alpha1.QoEAlert) { a.Spec.Condition = "above" },
			[]string{"spec.condition", `Unsupported value: "above"`}},
		{"negative threshold", func(a *v1alpha1.QoEAlert) { a.Spec.Threshold = resource.MustParse("-1") },
			[]string{"spec.threshold", "threshold must not be negative"}},
		{"baseline beyond the figures kept", func(a *v1alpha1.QoEAlert) { a.Spec.Baseline = dur(20 * time.Minute) },
			[]string{"spec.baseline", "baseline must be from 1m to 14m"}},
		{"unknown dimension", func(a *v1alpha1.QoEAlert) { a.Spec.Explain = []v1alpha1.AlertDimension{"isp"} },
			[]string{"spec.explain[0]", `Unsupported value: "isp"`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := p.c.Create(ctx, qoeAlert(ns, fmt.Sprintf("bad-%d", i), c.mutate))
			requireInvalid(t, err, c.want...)
		})
	}

	t.Run("valid ones are accepted and defaulted", func(t *testing.T) {
		overall := qoeAlert(ns, "viewers-drop", func(a *v1alpha1.QoEAlert) {
			a.Spec.Metric, a.Spec.Condition, a.Spec.Threshold = "concurrent_viewers", "Below", resource.MustParse("500m")
			a.Spec.Overall, a.Spec.Baseline, a.Spec.Window = true, dur(10*time.Minute), dur(time.Minute)
			a.Spec.For, a.Spec.ResolveAfter, a.Spec.MinSample = dur(time.Minute), dur(2*time.Minute), 100
			a.Spec.Explain = []v1alpha1.AlertDimension{"cdn", "device"}
		})
		one := qoeAlert(ns, "live-failures", func(a *v1alpha1.QoEAlert) { a.Spec.Stream = "live" })
		for _, a := range []*v1alpha1.QoEAlert{overall, one} {
			if err := p.c.Create(ctx, a); err != nil {
				t.Fatalf("%s: %v", a.Name, err)
			}
			if a.Spec.Severity != "warning" {
				t.Errorf("%s: severity defaults to %q, want warning", a.Name, a.Spec.Severity)
			}
		}
	})
}
