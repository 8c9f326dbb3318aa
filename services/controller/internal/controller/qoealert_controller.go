package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
	"sigs.k8s.io/yaml"

	"playpulse.dev/services/controller/api/v1alpha1"
)

// The ConfigMap is written whole by the controller (create, update); it is
// never deleted, so that fan-outs mounting it always have a valid file.
//
// +kubebuilder:rbac:groups=playpulse.dev,resources=qoealerts,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=configmaps,verbs=get;list;watch;create;update;patch

// AlertRulesKey is the key of the rules file in the ConfigMap; the chart
// points FANOUT_ALERT_RULES at it.
const AlertRulesKey = "rules.yaml"

// The label on everything the controller makes (the Deployments too); the
// manager caches only ConfigMaps carrying it, so it does not hold every
// ConfigMap of the cluster in memory.
const (
	LabelManagedBy = labelManagedBy
	ManagedBy      = managedBy
)

// alertRulesFile is the fan-out's rules file (services/fanout/internal/alert
// File and Spec, which this module cannot import): the same JSON names.
// tests/controller runs a real fan-out on a rendered file to prove they
// agree.
type alertRulesFile struct {
	Rules []alertRuleSpec `json:"rules"`
}

type alertRuleSpec struct {
	Name         string   `json:"name"`
	Metric       string   `json:"metric"`
	Stream       string   `json:"stream,omitempty"`
	Overall      bool     `json:"overall,omitempty"`
	Condition    string   `json:"condition"`
	Threshold    float64  `json:"threshold"`
	Baseline     string   `json:"baseline,omitempty"`
	Window       string   `json:"window,omitempty"`
	MinSample    int64    `json:"minSample,omitempty"`
	For          string   `json:"for,omitempty"`
	ResolveAfter string   `json:"resolveAfter,omitempty"`
	Severity     string   `json:"severity,omitempty"`
	Explain      []string `json:"explain,omitempty"`
}

// RenderAlertRules renders QoEAlerts into the fan-out's rules file, one
// rule per QoEAlert named after it, sorted by name so that the same
// QoEAlerts always give the same bytes (the ConfigMap is written only when
// they change). No QoEAlert gives `rules: []`, a valid file.
func RenderAlertRules(alerts []v1alpha1.QoEAlert) ([]byte, error) {
	sorted := slices.Clone(alerts)
	slices.SortFunc(sorted, func(a, b v1alpha1.QoEAlert) int { return strings.Compare(a.Name, b.Name) })
	f := alertRulesFile{Rules: []alertRuleSpec{}}
	for _, a := range sorted {
		f.Rules = append(f.Rules, alertRule(a))
	}
	b, err := yaml.Marshal(f)
	if err != nil {
		return nil, err
	}
	return append([]byte("# Rendered by playpulse-controller from this namespace's QoEAlerts: edit those, not this.\n"), b...), nil
}

func alertRule(a v1alpha1.QoEAlert) alertRuleSpec {
	s := a.Spec
	r := alertRuleSpec{
		Name:    a.Name,
		Metric:  s.Metric,
		Stream:  s.Stream,
		Overall: s.Overall,
		// The CRD says Above/Below as Kubernetes enums do; the file says
		// above/below.
		Condition: strings.ToLower(s.Condition),
		// A quantity holds any decimal the CRD accepts ("500m", "2.5");
		// the rules compare float64 figures anyway.
		Threshold:    s.Threshold.AsApproximateFloat64(),
		Baseline:     duration(s.Baseline),
		Window:       duration(s.Window),
		MinSample:    s.MinSample,
		For:          duration(s.For),
		ResolveAfter: duration(s.ResolveAfter),
		Severity:     s.Severity,
	}
	for _, d := range s.Explain {
		r.Explain = append(r.Explain, string(d))
	}
	return r
}

func duration(d *metav1.Duration) string {
	if d == nil {
		return ""
	}
	return d.Duration.String()
}

// AlertRulesReconciler keeps one ConfigMap per namespace with the rules of
// all its QoEAlerts. Its requests are namespace/ConfigMap name: every
// QoEAlert of a namespace maps to the same request, so a burst of edits is
// rendered once.
type AlertRulesReconciler struct {
	client    client.Client
	configMap string
	// keepIn is a namespace whose ConfigMap exists even without QoEAlerts:
	// the fan-outs there mount it, and a fan-out whose FANOUT_ALERT_RULES
	// file is missing does not start.
	keepIn string
}

// NewAlertRulesReconciler returns a reconciler rendering into the
// ConfigMap named configMap of each namespace with QoEAlerts, and of
// namespace keepIn (if not empty) always.
func NewAlertRulesReconciler(c client.Client, configMap, keepIn string) *AlertRulesReconciler {
	return &AlertRulesReconciler{client: c, configMap: configMap, keepIn: keepIn}
}

// SetupWithManager watches the QoEAlerts (spec changes, creation and
// deletion: the status loop's writes do not wake it) and the rules
// ConfigMaps, so that a ConfigMap edited or deleted by hand is rendered
// again.
func (r *AlertRulesReconciler) SetupWithManager(mgr ctrl.Manager) error {
	toNamespace := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: r.configMap}}}
	})
	ours := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetName() == r.configMap && o.GetLabels()[LabelManagedBy] == ManagedBy
	})
	b := ctrl.NewControllerManagedBy(mgr).
		Named("qoealert-rules").
		Watches(&v1alpha1.QoEAlert{}, toNamespace, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.ConfigMap{}, toNamespace, builder.WithPredicates(ours))
	if r.keepIn != "" {
		// Without QoEAlerts nothing else would wake the reconciler for it.
		start := make(chan event.GenericEvent, 1)
		start <- event.GenericEvent{Object: &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: r.keepIn, Name: r.configMap}}}
		b = b.WatchesRawSource(source.Channel(start, toNamespace))
	}
	return b.Complete(r)
}

// Reconcile implements reconcile.Reconciler.
func (r *AlertRulesReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var list v1alpha1.QoEAlertList
	if err := r.client.List(ctx, &list, client.InNamespace(req.Namespace)); err != nil {
		return ctrl.Result{}, err
	}
	// A QoEAlert being deleted no longer counts: its rule goes now, not
	// when its finalizers (someone else's) are done.
	live := slices.DeleteFunc(list.Items, func(a v1alpha1.QoEAlert) bool { return !a.DeletionTimestamp.IsZero() })
	data, err := RenderAlertRules(live)
	if err != nil {
		return ctrl.Result{}, err
	}
	var cm corev1.ConfigMap
	err = r.client.Get(ctx, req.NamespacedName, &cm)
	switch {
	case apierrors.IsNotFound(err):
		if len(live) == 0 && req.Namespace != r.keepIn {
			return ctrl.Result{}, nil // never had rules, or the ConfigMap was deleted with none left: nothing to mount
		}
		cm = corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: req.Namespace, Name: req.Name, Labels: map[string]string{LabelManagedBy: ManagedBy}},
			Data:       map[string]string{AlertRulesKey: string(data)},
		}
		if err := r.client.Create(ctx, &cm); err != nil {
			if apierrors.IsAlreadyExists(err) {
				// The cache holds only labelled ConfigMaps: this one is
				// someone else's, and is left alone.
				return ctrl.Result{}, fmt.Errorf("ConfigMap %s/%s exists without label %s=%s: rename it or set CONTROLLER_ALERT_RULES_CONFIGMAP", req.Namespace, req.Name, LabelManagedBy, ManagedBy)
			}
			return ctrl.Result{}, fmt.Errorf("create ConfigMap %s/%s: %w", req.Namespace, req.Name, err)
		}
		return ctrl.Result{}, nil
	case err != nil:
		return ctrl.Result{}, err
	}
	if cm.Data[AlertRulesKey] == string(data) && len(cm.Data) == 1 && len(cm.BinaryData) == 0 {
		return ctrl.Result{}, nil
	}
	// Other keys go too: the fan-out reads only rules.yaml, and the
	// ConfigMap is the controller's alone.
	cm.Data = map[string]string{AlertRulesKey: string(data)}
	cm.BinaryData = nil
	if err := r.client.Update(ctx, &cm); err != nil {
		return ctrl.Result{}, fmt.Errorf("update ConfigMap %s/%s: %w", req.Namespace, req.Name, err)
	}
	return ctrl.Result{}, nil
}
