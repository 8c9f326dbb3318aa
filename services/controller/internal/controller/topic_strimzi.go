package controller

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"playpulse.dev/services/controller/api/v1alpha1"
)

// KafkaTopicGVK is Strimzi's KafkaTopic (kafka.strimzi.io/v1). The
// controller uses it unstructured, so it needs no Strimzi Go module.
var KafkaTopicGVK = schema.GroupVersionKind{Group: "kafka.strimzi.io", Version: "v1", Kind: "KafkaTopic"}

// Strimzi's label and annotation names.
const (
	strimziClusterLabel     = "strimzi.io/cluster"
	strimziManagedAnnotaton = "strimzi.io/managed"
)

// NewKafkaTopic returns an empty unstructured KafkaTopic (for Get, List and
// watches).
func NewKafkaTopic() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(KafkaTopicGVK)
	return u
}

// buildKafkaTopic returns the KafkaTopic of a stream, for server-side apply.
func buildKafkaTopic(s *v1alpha1.PlaybackStream, e effective) *unstructured.Unstructured {
	u := NewKafkaTopic()
	u.SetName(e.KafkaTopic)
	u.SetNamespace(s.Namespace)
	l := objectLabels(s.Name, "topic")
	l[strimziClusterLabel] = e.Cluster
	u.SetLabels(l)
	u.SetOwnerReferences([]metav1.OwnerReference{{
		APIVersion:         v1alpha1.GroupVersion.String(),
		Kind:               "PlaybackStream",
		Name:               s.Name,
		UID:                s.UID,
		Controller:         ptrTo(true),
		BlockOwnerDeletion: ptrTo(true),
	}})
	spec := map[string]any{
		"topicName":  e.TopicName,
		"partitions": int64(e.Partitions),
	}
	if e.ReplicationFactor != nil {
		spec["replicas"] = int64(*e.ReplicationFactor)
	}
	if e.RetentionMs != nil {
		spec["config"] = map[string]any{"retention.ms": *e.RetentionMs}
	}
	u.Object["spec"] = spec
	return u
}

func ptrTo[T any](v T) *T { return &v }

// strimziTopics manages topics through Strimzi KafkaTopics.
type strimziTopics struct {
	client client.Client
}

func (*strimziTopics) mode() v1alpha1.TopicMode { return v1alpha1.TopicModeStrimzi }

func (r *strimziTopics) ensure(ctx context.Context, s *v1alpha1.PlaybackStream, e effective) (topicState, error) {
	st := topicState{Mode: v1alpha1.TopicModeStrimzi, Name: e.TopicName, KafkaTopic: e.KafkaTopic}
	ref := fmt.Sprintf("KafkaTopic %s/%s", s.Namespace, e.KafkaTopic)

	cur := NewKafkaTopic()
	err := r.client.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: e.KafkaTopic}, cur)
	exists := err == nil
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return st, fmt.Errorf("get %s: %w", ref, err)
	default:
		if uid := controllerUID(cur); uid != s.UID {
			st.Status, st.Reason = metav1.ConditionFalse, v1alpha1.ReasonTopicConflict
			owner := "nothing (it was created by hand or by another tool)"
			if o := metav1.GetControllerOf(cur); o != nil {
				owner = fmt.Sprintf("%s %s", o.Kind, o.Name)
			}
			st.Message = fmt.Sprintf("%s already exists and is controlled by %s; set spec.topic.name to another topic, or delete that KafkaTopic", ref, owner)
			return st, nil
		}
	}

	desired := buildKafkaTopic(s, e)
	if err := r.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(desired), client.FieldOwner(FieldManager), client.ForceOwnership); err != nil {
		st.Status, st.Reason = metav1.ConditionFalse, v1alpha1.ReasonApplyFailed
		st.Message = fmt.Sprintf("applying %s failed: %v", ref, err)
		return st, fmt.Errorf("apply %s: %w", ref, err)
	}
	if !exists {
		st.Done = append(st.Done, note{"KafkaTopicCreated", "Create", fmt.Sprintf("created %s for topic %s (%d partitions, cluster %s)", ref, e.TopicName, e.Partitions, e.Cluster)})
	} else if cur.GetGeneration() != desired.GetGeneration() {
		st.Done = append(st.Done, note{"KafkaTopicUpdated", "Update", fmt.Sprintf("updated %s (%d partitions)", ref, e.Partitions)})
	}
	observeKafkaTopic(&st, desired, ref, e.Cluster)
	return st, nil
}

// observeKafkaTopic mirrors the Topic Operator's view of a KafkaTopic: its
// Ready condition (with Strimzi's reason, e.g. PartitionDecreaseException,
// and message) and status.topicName, but only once the operator has seen
// the current generation.
func observeKafkaTopic(st *topicState, kt *unstructured.Unstructured, ref, cluster string) {
	observed, _, _ := unstructured.NestedInt64(kt.Object, "status", "observedGeneration")
	if name, ok, _ := unstructured.NestedString(kt.Object, "status", "topicName"); ok && name != "" {
		st.Name = name
	}
	var ready map[string]any
	conds, _, _ := unstructured.NestedSlice(kt.Object, "status", "conditions")
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Ready" {
			ready = m
		}
	}
	if ready == nil || observed < kt.GetGeneration() {
		st.Status, st.Reason, st.Waiting = metav1.ConditionUnknown, v1alpha1.ReasonWaitingForTopicOperator, true
		st.Message = fmt.Sprintf("%s (generation %d) is waiting for the Strimzi Topic Operator of Kafka cluster %q; if this lasts, check that the Kafka %q exists in this namespace with entityOperator.topicOperator enabled", ref, kt.GetGeneration(), cluster, cluster)
		return
	}
	status, _ := ready["status"].(string)
	reason, _ := ready["reason"].(string)
	message, _ := ready["message"].(string)
	switch status {
	case "True":
		st.Status, st.Reason = metav1.ConditionTrue, v1alpha1.ReasonTopicReady
		st.Message = fmt.Sprintf("topic %s is ready (%s)", st.Name, ref)
	default:
		st.Status = metav1.ConditionFalse
		if status == "Unknown" {
			st.Status = metav1.ConditionUnknown
		}
		st.Reason = reason
		if st.Reason == "" || !isConditionReason(st.Reason) {
			st.Reason = v1alpha1.ReasonKafkaTopicNotReady
		}
		if message == "" {
			message = "the Topic Operator reports it not ready without a message"
		}
		st.Message = fmt.Sprintf("%s: %s", ref, message)
	}
}

// isConditionReason reports whether s fits metav1.Condition's reason format
// (CamelCase, letters, digits, _ , : and ,).
func isConditionReason(s string) bool {
	if len(s) == 0 || len(s) > 1024 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'A' && r <= 'Z', r >= 'a' && r <= 'z':
		case i > 0 && (r >= '0' && r <= '9' || r == '_' || r == ',' || r == ':'):
		default:
			return false
		}
	}
	return true
}

func (r *strimziTopics) finalize(ctx context.Context, s *v1alpha1.PlaybackStream, e effective) (bool, string, error) {
	ref := fmt.Sprintf("KafkaTopic %s/%s", s.Namespace, e.KafkaTopic)
	kt := NewKafkaTopic()
	err := r.client.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: e.KafkaTopic}, kt)
	if apierrors.IsNotFound(err) {
		return true, ref + " is gone", nil
	}
	if err != nil {
		return false, "", fmt.Errorf("get %s: %w", ref, err)
	}
	if controllerUID(kt) != s.UID {
		return true, ref + " is not this stream's: left alone", nil
	}
	if e.DeletionPolicy == v1alpha1.DeletionPolicyRetain && kt.GetAnnotations()[strimziManagedAnnotaton] != "false" {
		// Strimzi lets go of an unmanaged KafkaTopic: deleting it then keeps
		// the topic in Kafka. The annotation is written (and confirmed by the
		// API server) before the deletion starts, so the Topic Operator sees
		// both in that order.
		patch := client.MergeFrom(kt.DeepCopy())
		ann := kt.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann[strimziManagedAnnotaton] = "false"
		kt.SetAnnotations(ann)
		if err := r.client.Patch(ctx, kt, patch); err != nil {
			return false, "", fmt.Errorf("mark %s unmanaged: %w", ref, err)
		}
	}
	if kt.GetDeletionTimestamp() == nil {
		if err := r.client.Delete(ctx, kt, client.Preconditions{UID: ptrTo(kt.GetUID())}); err != nil && !apierrors.IsNotFound(err) {
			return false, "", fmt.Errorf("delete %s: %w", ref, err)
		}
	}
	if e.DeletionPolicy == v1alpha1.DeletionPolicyRetain {
		return true, fmt.Sprintf("%s deleted after marking it %s: \"false\"; topic %s stays in Kafka", ref, strimziManagedAnnotaton, e.TopicName), nil
	}
	return true, fmt.Sprintf("%s deleted; the Topic Operator deletes topic %s", ref, e.TopicName), nil
}
