package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// A QoEAlert is one alert rule that the fan-outs evaluate over their live
// figures (docs/alerts.md, "Alerts in Playpulse"). The controller renders
// the QoEAlerts of a namespace into the rules file the fan-outs of that
// namespace read (a ConfigMap), and writes back into each QoEAlert's status
// what the fan-outs report. The rule's fields mean what the fan-out's rules
// file says; tests/controller checks that the two agree.

// QoEAlertSpec is the rule.
//
// +kubebuilder:validation:XValidation:rule="!(has(self.overall) && self.overall) || !has(self.stream)",message="set either stream or overall, not both"
// +kubebuilder:validation:XValidation:rule="!has(self.baseline) || !has(self.window) || duration(self.baseline) >= duration(self.window)",message="baseline must be at least the window: the two would overlap"
type QoEAlertSpec struct {
	// Metric watched (docs/metrics.md defines each): playback_failure_pct,
	// start_failure_pct, exit_before_start_pct, rebuffer_pct (percent),
	// startup_p95_s (seconds), concurrent_viewers.
	// +kubebuilder:validation:Enum=playback_failure_pct;start_failure_pct;exit_before_start_pct;rebuffer_pct;startup_p95_s;concurrent_viewers
	Metric string `json:"metric"`

	// Stream the rule watches. Default: each stream separately ("*").
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Stream string `json:"stream,omitempty"`

	// Overall evaluates the rule over every stream together.
	// +optional
	Overall bool `json:"overall,omitempty"`

	// Condition: the alert holds when the figure is Above or Below the
	// threshold.
	// +kubebuilder:validation:Enum=Above;Below
	Condition string `json:"condition"`

	// Threshold in the metric's unit, or, with baseline, a factor of the
	// figure baseline earlier ("0.5": half of it). A quantity: 5, "2.5",
	// "500m". Not negative.
	// +kubebuilder:validation:XValidation:rule="!quantity(string(self)).isLessThan(quantity('0'))",message="threshold must not be negative"
	Threshold resource.Quantity `json:"threshold"`

	// Baseline makes the threshold relative to the same figure this long
	// before (10m: the same time ten minutes earlier). At most 14m, within
	// the fan-out's 15 minutes of figures.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m') && duration(self) <= duration('14m')",message="baseline must be from 1m to 14m"
	// +optional
	Baseline *metav1.Duration `json:"baseline,omitempty"`

	// Window the figure is computed over. Default 1m, the dashboard's.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s') && duration(self) <= duration('10m')",message="window must be from 10s to 10m"
	// +optional
	Window *metav1.Duration `json:"window,omitempty"`

	// MinSample is the least sample for the rule to hold at all: views
	// ended (failure %), start outcomes (start failure %, exits before
	// start), watched seconds (rebuffering %), first frames (startup),
	// viewers at the baseline (concurrent viewers). Default 0.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MinSample int64 `json:"minSample,omitempty"`

	// For: how long the condition must hold before the alert fires.
	// Default 0s.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('1h')",message="for must be from 0s to 1h"
	// +optional
	For *metav1.Duration `json:"for,omitempty"`

	// ResolveAfter: how long the condition must be false before a firing
	// alert resolves, so that it does not flap. Default 1m.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s') && duration(self) <= duration('1h')",message="resolveAfter must be from 0s to 1h"
	// +optional
	ResolveAfter *metav1.Duration `json:"resolveAfter,omitempty"`

	// Severity, a label for routing. Default warning.
	// +kubebuilder:validation:Pattern=`^[a-z][a-z0-9_-]{0,31}$`
	// +kubebuilder:default=warning
	// +optional
	Severity string `json:"severity,omitempty"`

	// Explain lists the dimensions searched for the value that accounts
	// for most of an alert. Default: cdn, device, country.
	// +kubebuilder:validation:MaxItems=3
	// +listType=set
	// +optional
	Explain []AlertDimension `json:"explain,omitempty"`
}

// AlertDimension is a dimension that can explain an alert.
// +kubebuilder:validation:Enum=cdn;device;country
type AlertDimension string

// The states of a QoEAlert, as the fan-outs report them.
const (
	AlertInactive = "Inactive"
	AlertPending  = "Pending"
	AlertFiring   = "Firing"
	AlertUnknown  = "Unknown" // no fan-out answered
)

// QoEAlertStatus is what the fan-outs report.
type QoEAlertStatus struct {
	// State: Inactive, Pending, Firing, or Unknown when no fan-out answered.
	// +optional
	State string `json:"state,omitempty"`
	// LastTransitionTime is when State last changed.
	// +optional
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`
	// Firing lists the streams the alert fires for (at most 20).
	// +optional
	Firing []string `json:"firing,omitempty"`
	// Message says the alert in one line, with the dimension that explains
	// it: "playback failures 9.8% (threshold 5%) on live; cdn=fastly
	// accounts for 82% of the failures".
	// +optional
	Message string `json:"message,omitempty"`
	// ObservedGeneration is the generation the fan-outs were given.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// QoEAlert is one alert rule on the live QoE figures.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=qa,categories=playpulse
// +kubebuilder:printcolumn:name="Metric",type=string,JSONPath=`.spec.metric`
// +kubebuilder:printcolumn:name="Condition",type=string,JSONPath=`.spec.condition`
// +kubebuilder:printcolumn:name="Threshold",type=string,JSONPath=`.spec.threshold`
// +kubebuilder:printcolumn:name="State",type=string,JSONPath=`.status.state`
// +kubebuilder:printcolumn:name="Since",type=date,JSONPath=`.status.lastTransitionTime`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.message`,priority=1
type QoEAlert struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   QoEAlertSpec   `json:"spec"`
	Status QoEAlertStatus `json:"status,omitempty"`
}

// QoEAlertList is a list of QoEAlerts.
//
// +kubebuilder:object:root=true
type QoEAlertList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []QoEAlert `json:"items"`
}
