package controller

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"playpulse.dev/services/controller/api/v1alpha1"
)

var t0 = time.Date(2026, 11, 24, 21, 0, 0, 0, time.UTC)

func readyTopic() topicState {
	return topicState{Mode: v1alpha1.TopicModeStrimzi, Name: "playback-s", KafkaTopic: "playback-s",
		Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonTopicReady, Message: "ready"}
}

func waitingTopic() topicState {
	t := readyTopic()
	t.Status, t.Reason, t.Message, t.Waiting = metav1.ConditionUnknown, v1alpha1.ReasonWaitingForTopicOperator, "waiting", true
	return t
}

func readyProducers(n int32) producerState {
	return producerState{Exists: true, Name: "s-producer", Desired: n, Replicas: n, Updated: n, Ready: n, Available: n, Current: true}
}

func withCondition(typ string, status metav1.ConditionStatus, reason string, at time.Time) v1alpha1.PlaybackStreamStatus {
	return v1alpha1.PlaybackStreamStatus{Conditions: []metav1.Condition{{
		Type: typ, Status: status, Reason: reason, Message: "m", LastTransitionTime: metav1.NewTime(at),
	}}}
}

func TestComputeStatus(t *testing.T) {
	eff := effective{Stream: "s", Namespace: "ns", Rate: 600, Replicas: 3, Share: 200, Deployment: "s-producer"}
	paused := eff
	paused.Rate, paused.Share = 0, 0
	zero := eff
	zero.Replicas, zero.Share = 0, 0

	tests := []struct {
		name     string
		in       statusInput
		ready    [2]string // status, reason
		topic    [2]string
		producer [2]string
		requeue  time.Duration
		msg      string // in Ready's message
	}{
		{
			name:  "all ready",
			in:    statusInput{E: eff, Topic: readyTopic(), Producer: readyProducers(3)},
			ready: [2]string{"True", v1alpha1.ReasonProducing}, topic: [2]string{"True", v1alpha1.ReasonTopicReady}, producer: [2]string{"True", v1alpha1.ReasonProducersReady},
			msg: "600 events/s into topic playback-s from 3 producers (200 each)",
		},
		{
			name:  "paused",
			in:    statusInput{E: paused, Topic: readyTopic(), Producer: readyProducers(3)},
			ready: [2]string{"True", v1alpha1.ReasonPaused}, topic: [2]string{"True", v1alpha1.ReasonTopicReady}, producer: [2]string{"True", v1alpha1.ReasonProducersReady},
			msg: "eventsPerSecond is 0",
		},
		{
			name:  "scaled to zero",
			in:    statusInput{E: zero, Topic: readyTopic(), Producer: readyProducers(0)},
			ready: [2]string{"True", v1alpha1.ReasonScaledToZero}, topic: [2]string{"True", v1alpha1.ReasonTopicReady}, producer: [2]string{"True", v1alpha1.ReasonScaledToZero},
		},
		{
			name:  "waiting for the topic operator, first time",
			in:    statusInput{E: eff, Topic: waitingTopic(), Producer: producerState{Held: true, HeldReason: v1alpha1.ReasonWaitingForTopic, HeldMessage: "later"}},
			ready: [2]string{"Unknown", v1alpha1.ReasonWaitingForTopicOperator}, topic: [2]string{"Unknown", v1alpha1.ReasonWaitingForTopicOperator}, producer: [2]string{"False", v1alpha1.ReasonWaitingForTopic},
			requeue: 2 * time.Minute,
		},
		{
			name: "still waiting, 90 s in",
			in: statusInput{E: eff, Topic: waitingTopic(), Producer: producerState{Held: true, HeldReason: v1alpha1.ReasonWaitingForTopic},
				Old: withCondition(v1alpha1.ConditionTopicReady, metav1.ConditionUnknown, v1alpha1.ReasonWaitingForTopicOperator, t0.Add(-90*time.Second))},
			ready: [2]string{"Unknown", v1alpha1.ReasonWaitingForTopicOperator}, topic: [2]string{"Unknown", v1alpha1.ReasonWaitingForTopicOperator}, producer: [2]string{"False", v1alpha1.ReasonWaitingForTopic},
			requeue: 30 * time.Second,
		},
		{
			name: "waited past the timeout",
			in: statusInput{E: eff, Topic: waitingTopic(), Producer: producerState{Held: true, HeldReason: v1alpha1.ReasonWaitingForTopic},
				Old: withCondition(v1alpha1.ConditionTopicReady, metav1.ConditionUnknown, v1alpha1.ReasonWaitingForTopicOperator, t0.Add(-2*time.Minute))},
			ready: [2]string{"False", v1alpha1.ReasonTopicOperatorNotResponding}, topic: [2]string{"False", v1alpha1.ReasonTopicOperatorNotResponding}, producer: [2]string{"False", v1alpha1.ReasonWaitingForTopic},
			msg: "no answer from the Strimzi Topic Operator for more than 2m0s",
		},
		{
			name: "stays not responding (no flapping back to waiting)",
			in: statusInput{E: eff, Topic: waitingTopic(), Producer: producerState{Held: true, HeldReason: v1alpha1.ReasonWaitingForTopic},
				Old: withCondition(v1alpha1.ConditionTopicReady, metav1.ConditionFalse, v1alpha1.ReasonTopicOperatorNotResponding, t0.Add(-time.Second))},
			ready: [2]string{"False", v1alpha1.ReasonTopicOperatorNotResponding}, topic: [2]string{"False", v1alpha1.ReasonTopicOperatorNotResponding}, producer: [2]string{"False", v1alpha1.ReasonWaitingForTopic},
		},
		{
			name: "a ready topic that starts waiting again (new generation) gets a fresh timeout",
			in: statusInput{E: eff, Topic: waitingTopic(), Producer: readyProducers(3),
				Old: withCondition(v1alpha1.ConditionTopicReady, metav1.ConditionTrue, v1alpha1.ReasonTopicReady, t0.Add(-time.Hour))},
			ready: [2]string{"Unknown", v1alpha1.ReasonWaitingForTopicOperator}, topic: [2]string{"Unknown", v1alpha1.ReasonWaitingForTopicOperator}, producer: [2]string{"True", v1alpha1.ReasonProducersReady},
			requeue: 2 * time.Minute,
		},
		{
			name: "topic error mirrored, producers keep running",
			in: statusInput{E: eff, Producer: readyProducers(3), Topic: topicState{Mode: v1alpha1.TopicModeStrimzi, Name: "playback-s",
				Status: metav1.ConditionFalse, Reason: "PartitionDecreaseException", Message: "KafkaTopic ns/playback-s: Number of partitions cannot be decreased"}},
			ready: [2]string{"False", "PartitionDecreaseException"}, topic: [2]string{"False", "PartitionDecreaseException"}, producer: [2]string{"True", v1alpha1.ReasonProducersReady},
			msg: "Number of partitions cannot be decreased",
		},
		{
			name:  "rolling out",
			in:    statusInput{E: eff, Topic: readyTopic(), Producer: producerState{Exists: true, Name: "s-producer", Desired: 3, Replicas: 3, Updated: 1, Ready: 2, Current: true}},
			ready: [2]string{"False", v1alpha1.ReasonRollingOut}, topic: [2]string{"True", v1alpha1.ReasonTopicReady}, producer: [2]string{"False", v1alpha1.ReasonRollingOut},
			msg: "1 of 3 producers run the current spec, 2 ready",
		},
		{
			name:  "deployment controller has not seen the new spec",
			in:    statusInput{E: eff, Topic: readyTopic(), Producer: func() producerState { p := readyProducers(3); p.Current = false; return p }()},
			ready: [2]string{"False", v1alpha1.ReasonRollingOut}, topic: [2]string{"True", v1alpha1.ReasonTopicReady}, producer: [2]string{"False", v1alpha1.ReasonRollingOut},
		},
		{
			name:  "pods up but not ready",
			in:    statusInput{E: eff, Topic: readyTopic(), Producer: func() producerState { p := readyProducers(3); p.Ready = 1; return p }()},
			ready: [2]string{"False", v1alpha1.ReasonProducersNotReady}, topic: [2]string{"True", v1alpha1.ReasonTopicReady}, producer: [2]string{"False", v1alpha1.ReasonProducersNotReady},
			msg: "1 of 3 producers ready",
		},
		{
			name: "quota refuses pods",
			in: statusInput{E: eff, Topic: readyTopic(), Producer: func() producerState {
				p := readyProducers(3)
				p.Ready, p.FailReason, p.FailMsg = 0, v1alpha1.ReasonReplicaFailure, `pods "s-producer-x" is forbidden: exceeded quota`
				return p
			}()},
			ready: [2]string{"False", v1alpha1.ReasonReplicaFailure}, topic: [2]string{"True", v1alpha1.ReasonTopicReady}, producer: [2]string{"False", v1alpha1.ReasonReplicaFailure},
			msg: "exceeded quota",
		},
		{
			name: "above the controller's per-replica limit",
			in: statusInput{E: eff, Topic: readyTopic(), Producer: producerState{Held: true, HeldReason: v1alpha1.ReasonRateAboveReplicaLimit,
				HeldMessage: "set replicas to at least 4"}},
			ready: [2]string{"False", v1alpha1.ReasonRateAboveReplicaLimit}, topic: [2]string{"True", v1alpha1.ReasonTopicReady}, producer: [2]string{"False", v1alpha1.ReasonRateAboveReplicaLimit},
			msg: "at least 4",
		},
		{
			name:  "deleting",
			in:    statusInput{E: eff, Topic: readyTopic(), Producer: readyProducers(3), Deleting: "waiting for Kafka"},
			ready: [2]string{"False", v1alpha1.ReasonDeleting}, topic: [2]string{"True", v1alpha1.ReasonTopicReady}, producer: [2]string{"True", v1alpha1.ReasonProducersReady},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.in.Generation = 7
			tt.in.Now = t0
			tt.in.TopicReadyTimeout = 2 * time.Minute
			st, requeue := computeStatus(tt.in)
			if st.ObservedGeneration != 7 {
				t.Errorf("observedGeneration %d", st.ObservedGeneration)
			}
			for typ, want := range map[string][2]string{
				v1alpha1.ConditionReady: tt.ready, v1alpha1.ConditionTopicReady: tt.topic, v1alpha1.ConditionProducerReady: tt.producer,
			} {
				c := meta.FindStatusCondition(st.Conditions, typ)
				if c == nil {
					t.Fatalf("no %s condition", typ)
				}
				if string(c.Status) != want[0] || c.Reason != want[1] {
					t.Errorf("%s = %s/%s (%s), want %s/%s", typ, c.Status, c.Reason, c.Message, want[0], want[1])
				}
				if c.ObservedGeneration != 7 || c.Message == "" {
					t.Errorf("%s: observedGeneration %d, message %q", typ, c.ObservedGeneration, c.Message)
				}
			}
			if requeue != tt.requeue {
				t.Errorf("requeue %s, want %s", requeue, tt.requeue)
			}
			if tt.msg != "" {
				if c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady); !strings.Contains(c.Message, tt.msg) {
					t.Errorf("Ready message %q lacks %q", c.Message, tt.msg)
				}
			}
			// Same input, same output: computing twice changes nothing.
			tt.in.Old = st
			again, _ := computeStatus(tt.in)
			if !equalStatus(st, again) {
				t.Errorf("not idempotent:\n%+v\n%+v", st, again)
			}
		})
	}
}

func equalStatus(a, b v1alpha1.PlaybackStreamStatus) bool { return equality.Semantic.DeepEqual(a, b) }

func TestStatusFields(t *testing.T) {
	e := effective{Stream: "s", Namespace: "ns", Rate: 2000, Replicas: 3, Share: 2000.0 / 3}
	st, _ := computeStatus(statusInput{E: e, Topic: readyTopic(), Producer: readyProducers(3), Now: t0, TopicReadyTimeout: time.Minute})
	if st.Selector != "app.kubernetes.io/component=producer,playpulse.dev/stream=s" || st.Replicas != 3 || st.ReadyReplicas != 3 ||
		st.TopicName != "playback-s" || st.TopicMode != v1alpha1.TopicModeStrimzi || st.EventsPerSecondPerReplica != 2000.0/3 {
		t.Errorf("status %+v", st)
	}
	// A held rollout keeps reporting the share that runs.
	old := st
	e.Share = 99999
	st, _ = computeStatus(statusInput{E: e, Old: old, Topic: readyTopic(), Producer: producerState{Held: true, HeldReason: v1alpha1.ReasonRateAboveReplicaLimit}, Now: t0, TopicReadyTimeout: time.Minute})
	if st.EventsPerSecondPerReplica != 2000.0/3 {
		t.Errorf("held rollout reports %v per replica", st.EventsPerSecondPerReplica)
	}
}
