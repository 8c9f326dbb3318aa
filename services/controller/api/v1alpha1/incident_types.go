package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MaxIncidents is the most incidents one stream may list (the simulator's
// sim.MaxIncidents; a test checks they agree).
const MaxIncidents = 16

// Incident is a fault in the simulated audience for a while, to rehearse
// alerting: exactly one of cdnDegradation, errorBurst and flashCrowd.
// The producers get the incidents with absolute times (PRODUCER_INCIDENTS),
// so a scheduled incident starts and ends without restarting them; adding,
// changing or removing one rolls them like any other spec change.
//
// +kubebuilder:validation:XValidation:rule="(has(self.cdnDegradation) ? 1 : 0) + (has(self.errorBurst) ? 1 : 0) + (has(self.flashCrowd) ? 1 : 0) == 1",message="an incident is exactly one of cdnDegradation, errorBurst or flashCrowd"
type Incident struct {
	// Name of the incident, unique in the stream; status and the
	// producers' logs use it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Name string `json:"name"`

	// Start of the incident (RFC 3339). Absent: when the controller first
	// sees the incident; that time is kept for as long as the incident is
	// listed under the same name (status.incidents shows it).
	// +optional
	Start *metav1.Time `json:"start,omitempty"`

	// Duration of the incident, e.g. 5m; from 10s to 24h.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s') && duration(self) <= duration('24h')",message="duration must be between 10s and 24h"
	Duration metav1.Duration `json:"duration"`

	// CDNDegradation: one CDN serves badly.
	// +optional
	CDNDegradation *CDNDegradation `json:"cdnDegradation,omitempty"`

	// ErrorBurst: one device class fails.
	// +optional
	ErrorBurst *ErrorBurst `json:"errorBurst,omitempty"`

	// FlashCrowd: many more viewers at once.
	// +optional
	FlashCrowd *FlashCrowd `json:"flashCrowd,omitempty"`
}

// CDNDegradation makes one CDN's sessions stall more, start slower and
// play a lower bitrate.
type CDNDegradation struct {
	// CDN whose sessions are affected (the simulator's CDNs).
	// +kubebuilder:validation:Enum=akamai;cloudfront;fastly
	CDN string `json:"cdn"`

	// StallFactor multiplies how often the CDN's playing sessions stall.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=5
	// +optional
	StallFactor float64 `json:"stallFactor,omitempty"`

	// BitrateFactor is the share of the throughput the CDN still
	// sustains: its sessions play (and downshift within seconds to) the
	// highest ladder rung at or below this share of what their network
	// allows.
	// +kubebuilder:validation:Minimum=0.05
	// +kubebuilder:validation:Maximum=1
	// +kubebuilder:default=0.5
	// +optional
	BitrateFactor float64 `json:"bitrateFactor,omitempty"`

	// StartupFactor multiplies the startup time of the CDN's new sessions
	// (more of them give up before the first frame).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=20
	// +kubebuilder:default=2
	// +optional
	StartupFactor float64 `json:"startupFactor,omitempty"`
}

// ErrorBurst makes one device class fail more.
type ErrorBurst struct {
	// Device class whose sessions are affected.
	// +kubebuilder:validation:Enum=tv;mobile;desktop;tablet
	Device string `json:"device"`

	// Factor multiplies the device's fatal playback errors and its start
	// failures (the latter at most every start).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=20
	// +optional
	Factor float64 `json:"factor,omitempty"`
}

// FlashCrowd multiplies the audience: arrivals, viewers and so the events
// per second (each producer sends factor × its share, which must stay
// within 50000 events/s per producer).
type FlashCrowd struct {
	// Factor multiplies the audience and the event rate.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10
	// +kubebuilder:default=3
	// +optional
	Factor float64 `json:"factor,omitempty"`
}

// IncidentState is where an incident is in its window.
// +kubebuilder:validation:Enum=Scheduled;Active;Ended
type IncidentState string

const (
	// IncidentScheduled: the incident starts later.
	IncidentScheduled IncidentState = "Scheduled"
	// IncidentActive: the producers apply it now.
	IncidentActive IncidentState = "Active"
	// IncidentEnded: its window is over; it may be removed from the spec.
	IncidentEnded IncidentState = "Ended"
)

// IncidentStatus is the window of one incident as the producers run it.
type IncidentStatus struct {
	// Name of the incident in spec.incidents.
	Name string `json:"name"`
	// State: Scheduled, Active or Ended.
	State IncidentState `json:"state"`
	// Start and End of the window the producers apply.
	Start metav1.Time `json:"start"`
	End   metav1.Time `json:"end"`
}
