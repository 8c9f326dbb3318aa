package controller

import (
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"playpulse.dev/services/controller/api/v1alpha1"
)

// statusInput is everything the status of a stream is computed from.
type statusInput struct {
	Generation int64
	Old        v1alpha1.PlaybackStreamStatus
	E          effective
	Topic      topicState
	Producer   producerState
	// Deleting carries what the deletion waits for; empty when not deleting.
	Deleting string

	Now               time.Time
	TopicReadyTimeout time.Duration
}

// computeStatus returns the stream's new status and, when the outcome
// depends on time (waiting for the Topic Operator, an incident starting or
// ending), how long until it should be looked at again. It is a pure function: same input, same
// status; the clock comes in as Now.
func computeStatus(in statusInput) (v1alpha1.PlaybackStreamStatus, time.Duration) {
	st := *in.Old.DeepCopy()
	st.ObservedGeneration = in.Generation
	st.TopicName = in.Topic.Name
	st.TopicMode = in.Topic.Mode
	st.KafkaTopic = in.Topic.KafkaTopic
	st.Selector = SelectorString(in.E.Stream)
	st.Replicas = in.Producer.Replicas
	st.ReadyReplicas = in.Producer.Ready
	if !in.Producer.Held {
		st.EventsPerSecondPerReplica = in.E.Share
	}

	var requeue time.Duration
	topic := metav1.Condition{Type: v1alpha1.ConditionTopicReady, Status: in.Topic.Status, Reason: in.Topic.Reason, Message: in.Topic.Message}
	if in.Topic.Waiting {
		since := in.Now
		old := meta.FindStatusCondition(in.Old.Conditions, v1alpha1.ConditionTopicReady)
		switch {
		case old != nil && old.Reason == v1alpha1.ReasonTopicOperatorNotResponding:
			since = time.Time{} // already past the timeout: stay there
		case old != nil && old.Reason == v1alpha1.ReasonWaitingForTopicOperator && old.Status == metav1.ConditionUnknown:
			since = old.LastTransitionTime.Time
		}
		if left := since.Add(in.TopicReadyTimeout).Sub(in.Now); left > 0 {
			requeue = left
		} else {
			topic.Status = metav1.ConditionFalse
			topic.Reason = v1alpha1.ReasonTopicOperatorNotResponding
			topic.Message = fmt.Sprintf("no answer from the Strimzi Topic Operator for more than %s: %s", in.TopicReadyTimeout, in.Topic.Message)
		}
	}
	if topic.Reason == "" {
		topic.Reason = v1alpha1.ReasonKafkaTopicNotReady
	}
	if topic.Status == "" {
		topic.Status = metav1.ConditionUnknown
	}
	var next time.Duration
	st.Incidents, st.ActiveIncidents, st.NextIncidentChange, next = incidentStatus(in.Producer.Incidents, in.Now)
	if next > 0 && (requeue == 0 || next < requeue) {
		requeue = next // look again when an incident starts or ends
	}
	producer := producerCondition(in)
	ready := readyCondition(in, topic, producer)

	for _, c := range []metav1.Condition{ready, topic, producer} {
		c.ObservedGeneration = in.Generation
		c.LastTransitionTime = metav1.NewTime(in.Now)
		if c.Message == "" {
			c.Message = c.Reason
		}
		meta.SetStatusCondition(&st.Conditions, c)
	}
	return st, requeue
}

func producerCondition(in statusInput) metav1.Condition {
	p, e := in.Producer, in.E
	c := metav1.Condition{Type: v1alpha1.ConditionProducerReady, Status: metav1.ConditionFalse}
	ref := fmt.Sprintf("Deployment %s/%s", e.Namespace, p.Name)
	switch {
	case p.Held:
		c.Reason, c.Message = p.HeldReason, p.HeldMessage
	case p.FailReason != "":
		c.Reason = p.FailReason
		c.Message = fmt.Sprintf("%s: %s; see kubectl -n %s describe deployment %s", ref, p.FailMsg, e.Namespace, p.Name)
	case !p.Exists:
		c.Reason, c.Message = v1alpha1.ReasonRollingOut, ref+" does not exist yet"
	case p.Desired == 0 && p.Replicas == 0:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonScaledToZero
		c.Message = "spec.replicas is 0: no producer runs"
	case !p.Current || p.Updated < p.Desired || p.Replicas > p.Desired:
		c.Reason = v1alpha1.ReasonRollingOut
		c.Message = fmt.Sprintf("rolling out %s: %d of %d producers run the current spec, %d ready", ref, p.Updated, p.Desired, p.Ready)
	case p.Ready < p.Desired:
		c.Reason = v1alpha1.ReasonProducersNotReady
		c.Message = fmt.Sprintf("%d of %d producers ready (%s); a producer is ready once Kafka acknowledges its events: see kubectl -n %s describe deployment %s and the pods' logs", p.Ready, p.Desired, ref, e.Namespace, p.Name)
	default:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonProducersReady
		c.Message = fmt.Sprintf("%d producers ready, %s events/s each (%s)", p.Ready, formatRate(e.Share), ref)
	}
	return c
}

func readyCondition(in statusInput, topic, producer metav1.Condition) metav1.Condition {
	c := metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse}
	e := in.E
	switch {
	case in.Deleting != "":
		c.Reason, c.Message = v1alpha1.ReasonDeleting, in.Deleting
	case topic.Status != metav1.ConditionTrue:
		c.Status, c.Reason, c.Message = topic.Status, topic.Reason, topic.Message
	case producer.Status != metav1.ConditionTrue:
		c.Reason, c.Message = producer.Reason, producer.Message
	case e.Replicas == 0:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonScaledToZero
		c.Message = fmt.Sprintf("topic %s is ready; spec.replicas is 0, so no events flow", in.Topic.Name)
	case e.Rate == 0:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonPaused
		c.Message = fmt.Sprintf("paused: eventsPerSecond is 0; %d producers stay connected to topic %s and send nothing", in.Producer.Ready, in.Topic.Name)
	default:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonProducing
		c.Message = fmt.Sprintf("%d events/s into topic %s from %d producers (%s each)", e.Rate, in.Topic.Name, in.Producer.Ready, formatRate(e.Share))
	}
	return c
}
