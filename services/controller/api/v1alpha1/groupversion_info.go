// Package v1alpha1 is the PlaybackStream API (group playpulse.dev, version
// v1alpha1): one simulated audience whose events a set of producer pods
// publish to one Kafka topic.
//
// The CRD (config/crd/bases) and the RBAC rules (config/rbac) are generated
// from the markers in this package by controller-gen: run `make generate`.
//
// +kubebuilder:object:generate=true
// +groupName=playpulse.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of this API.
	GroupVersion = schema.GroupVersion{Group: "playpulse.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types of this package.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this package to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
