package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"playpulse.dev/services/controller/api/v1alpha1"
)

func qoeAlert(ns, name string, mutate func(*v1alpha1.QoEAlertSpec)) v1alpha1.QoEAlert {
	a := v1alpha1.QoEAlert{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Generation: 1},
		Spec:       v1alpha1.QoEAlertSpec{Metric: "playback_failure_pct", Condition: "Above", Threshold: resource.MustParse("5"), Severity: "warning"},
	}
	if mutate != nil {
		mutate(&a.Spec)
	}
	return a
}

func TestRenderAlertRules(t *testing.T) {
	dur := func(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
	const header = "# Rendered by playpulse-controller from this namespace's QoEAlerts: edit those, not this.\n"
	for _, tt := range []struct {
		name   string
		alerts []v1alpha1.QoEAlert
		want   string
	}{
		{"none: a valid empty file", nil, "rules: []\n"},
		{"defaults left to the fan-out", []v1alpha1.QoEAlert{qoeAlert("ns", "failures", nil)},
			"rules:\n- condition: above\n  metric: playback_failure_pct\n  name: failures\n  severity: warning\n  threshold: 5\n"},
		{"every field, quantity as a float, durations as Go's", []v1alpha1.QoEAlert{qoeAlert("ns", "viewers-drop", func(s *v1alpha1.QoEAlertSpec) {
			s.Metric, s.Condition, s.Threshold, s.Overall = "concurrent_viewers", "Below", resource.MustParse("500m"), true
			s.Baseline, s.Window, s.For, s.ResolveAfter = dur(10*time.Minute), dur(90*time.Second), dur(0), dur(2*time.Minute)
			s.MinSample, s.Severity, s.Explain = 100, "page", []v1alpha1.AlertDimension{"cdn", "device"}
		})}, "rules:\n- baseline: 10m0s\n  condition: below\n  explain:\n  - cdn\n  - device\n  for: 0s\n  metric: concurrent_viewers\n  minSample: 100\n" +
			"  name: viewers-drop\n  overall: true\n  resolveAfter: 2m0s\n  severity: page\n  threshold: 0.5\n  window: 1m30s\n"},
		{"sorted by name, one stream", []v1alpha1.QoEAlert{
			qoeAlert("ns", "zz", func(s *v1alpha1.QoEAlertSpec) { s.Threshold = resource.MustParse("2.5") }),
			qoeAlert("ns", "aa", func(s *v1alpha1.QoEAlertSpec) { s.Stream = "live" }),
		}, "rules:\n- condition: above\n  metric: playback_failure_pct\n  name: aa\n  severity: warning\n  stream: live\n  threshold: 5\n" +
			"- condition: above\n  metric: playback_failure_pct\n  name: zz\n  severity: warning\n  threshold: 2.5\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := RenderAlertRules(tt.alerts)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != header+tt.want {
				t.Errorf("got\n%s\nwant\n%s%s", got, header, tt.want)
			}
		})
	}
}

func testScheme(t *testing.T) *runtime.Scheme {
	t.Helper()
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAlertRulesReconcile: one ConfigMap per namespace, written only when
// its content changes, left with `rules: []` when the last QoEAlert goes.
func TestAlertRulesReconcile(t *testing.T) {
	ctx := context.Background()
	a, b := qoeAlert("ns", "a", nil), qoeAlert("ns", "b", func(s *v1alpha1.QoEAlertSpec) { s.Condition = "Below" })
	other := qoeAlert("other", "c", nil)
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(&a, &b, &other).Build()
	r := NewAlertRulesReconciler(c, "rules", "fanout")
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "ns", Name: "rules"}}
	reconcile := func() corev1.ConfigMap {
		t.Helper()
		if _, err := r.Reconcile(ctx, req); err != nil {
			t.Fatal(err)
		}
		var cm corev1.ConfigMap
		if err := c.Get(ctx, req.NamespacedName, &cm); err != nil {
			t.Fatal(err)
		}
		return cm
	}

	cm := reconcile()
	if cm.Labels[LabelManagedBy] != ManagedBy {
		t.Errorf("labels %v", cm.Labels)
	}
	rules := cm.Data[AlertRulesKey]
	if strings.Count(rules, "- condition:") != 2 || !strings.Contains(rules, "name: a\n") || !strings.Contains(rules, "condition: below") || strings.Contains(rules, "name: c\n") {
		t.Errorf("rules of ns:\n%s", rules)
	}
	if again := reconcile(); again.ResourceVersion != cm.ResourceVersion {
		t.Errorf("rewritten with the same content: resourceVersion %s -> %s", cm.ResourceVersion, again.ResourceVersion)
	}

	a.Spec.Threshold = resource.MustParse("7")
	if err := c.Update(ctx, &a); err != nil {
		t.Fatal(err)
	}
	if got := reconcile().Data[AlertRulesKey]; !strings.Contains(got, "threshold: 7") {
		t.Errorf("after the edit:\n%s", got)
	}

	cm = reconcile()
	cm.Data[AlertRulesKey] = "rules: []\n"
	cm.Data["extra"] = "x"
	if err := c.Update(ctx, &cm); err != nil {
		t.Fatal(err)
	}
	if got := reconcile(); strings.Count(got.Data[AlertRulesKey], "- condition:") != 2 || len(got.Data) != 1 {
		t.Errorf("a hand edit is not undone: %v", got.Data)
	}

	for _, x := range []*v1alpha1.QoEAlert{&a, &b} {
		if err := c.Delete(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	if got := reconcile().Data[AlertRulesKey]; !strings.HasSuffix(got, "\nrules: []\n") {
		t.Errorf("after the last QoEAlert went:\n%s", got)
	}

	empty := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "none", Name: "rules"}}
	if _, err := r.Reconcile(ctx, empty); err != nil {
		t.Fatal(err)
	}
	var cms corev1.ConfigMapList
	if err := c.List(ctx, &cms, client.InNamespace("none")); err != nil || len(cms.Items) != 0 {
		t.Errorf("a namespace without QoEAlerts got %d ConfigMaps (%v)", len(cms.Items), err)
	}
	fanout := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "fanout", Name: "rules"}}
	if _, err := r.Reconcile(ctx, fanout); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, fanout.NamespacedName, &cm); err != nil || !strings.HasSuffix(cm.Data[AlertRulesKey], "\nrules: []\n") {
		t.Errorf("the fan-out's namespace without QoEAlerts: %v %v", err, cm.Data)
	}
}
