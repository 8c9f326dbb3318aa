// Package v1alpha1 is the Playpulse API (group playpulse.dev, version
// v1alpha1): PlaybackStream, one simulated audience whose events a set of
// producer pods publish to one Kafka topic, and QoEAlert, one alert rule
// the fan-outs evaluate over the live figures.
//
// The CRD (config/crd/bases) and the RBAC rules (config/rbac) are generated
// from the markers in this package by controller-gen: run `make generate`.
//
// +kubebuilder:object:generate=true
// +groupName=playpulse.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "playpulse.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package. It is
	// apimachinery's, not controller-runtime's (deprecated for API
	// packages), so importing the API pulls in apimachinery only.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, &PlaybackStream{}, &PlaybackStreamList{}, &QoEAlert{}, &QoEAlertList{})
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
