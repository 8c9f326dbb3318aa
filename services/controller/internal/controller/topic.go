package controller

import (
	"context"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"playpulse.dev/services/controller/api/v1alpha1"
)

// topicState is what a topic reconciler did and saw: the TopicReady
// condition it proposes, plus what the status and the producers need.
type topicState struct {
	Mode       v1alpha1.TopicMode
	Name       string // the topic's name in Kafka
	KafkaTopic string // the KafkaTopic resource (Strimzi mode)

	Status  metav1.ConditionStatus
	Reason  string
	Message string

	// Waiting: the Strimzi Topic Operator has not answered for the current
	// generation of the KafkaTopic yet; the status computation turns this
	// into TopicOperatorNotResponding once CONTROLLER_TOPIC_READY_TIMEOUT
	// has passed.
	Waiting bool
	// Poll asks for another look after this long (Kafka is still creating
	// the topic); 0: only events wake the reconciler.
	Poll time.Duration
	// Done lists what this reconcile changed, for Kubernetes events.
	Done []note
}

// note is something worth a Kubernetes event.
type note struct {
	Reason  string
	Action  string
	Message string
}

func (t topicState) ready() bool { return t.Status == metav1.ConditionTrue }

// topicReconciler makes a stream's topic exist as specified and applies the
// deletion policy. An error means "retry with backoff"; the returned state
// still carries a condition a person can act on.
type topicReconciler interface {
	mode() v1alpha1.TopicMode
	ensure(ctx context.Context, s *v1alpha1.PlaybackStream, e effective) (topicState, error)
	// finalize applies the deletion policy. done reports that the stream's
	// finalizer can go; message says what happened or what it waits for.
	finalize(ctx context.Context, s *v1alpha1.PlaybackStream, e effective) (done bool, message string, err error)
}

// controllerUID returns the UID of an object's controller owner, if any.
func controllerUID(obj metav1.Object) types.UID {
	if ref := metav1.GetControllerOf(obj); ref != nil {
		return ref.UID
	}
	return ""
}
