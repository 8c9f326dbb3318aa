package controller

import (
	"context"
	"errors"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"playpulse.dev/services/controller/api/v1alpha1"
)

// What the controller may do, as controller-gen turns it into
// config/rbac/role.yaml. Leader election (Leases) is granted separately, in
// the controller's own namespace, by the chart.
//
// +kubebuilder:rbac:groups=playpulse.dev,resources=playbackstreams,verbs=get;list;watch;update;patch
// +kubebuilder:rbac:groups=playpulse.dev,resources=playbackstreams/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=playpulse.dev,resources=playbackstreams/finalizers,verbs=update
// +kubebuilder:rbac:groups=apps,resources=deployments,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=kafka.strimzi.io,resources=kafkatopics,verbs=get;list;watch;create;update;patch;delete
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch

// EventSource is the reporting controller of the Kubernetes events.
const EventSource = "playpulse-controller"

// StreamReconciler reconciles PlaybackStreams: it calls the topic
// reconciler, then the producer reconciler, then writes the status computed
// from what both saw.
type StreamReconciler struct {
	client    client.Client
	recorder  events.EventRecorder
	topics    topicReconciler
	producers *producerReconciler
	opts      Options
	clock     clock.PassiveClock
}

// NewStreamReconciler returns a reconciler managing topics in mode (Strimzi
// KafkaTopics, or the Kafka admin API through newAdmin).
func NewStreamReconciler(c client.Client, rec events.EventRecorder, mode v1alpha1.TopicMode, newAdmin AdminFactory, opts Options) *StreamReconciler {
	r := &StreamReconciler{
		client:    c,
		recorder:  rec,
		producers: &producerReconciler{client: c, opts: opts, clock: clock.RealClock{}},
		opts:      opts,
		clock:     clock.RealClock{},
	}
	if mode == v1alpha1.TopicModeStrimzi {
		r.topics = &strimziTopics{client: c}
	} else {
		r.topics = &kafkaTopics{newAdmin: newAdmin, settle: 5 * time.Second, explain: opts.Explain}
	}
	return r
}

// SetupWithManager registers the controller: it watches PlaybackStreams
// (spec changes and deletion only, so its own status writes do not wake
// it), the Deployments and, with Strimzi, the KafkaTopics it owns.
func (r *StreamReconciler) SetupWithManager(mgr ctrl.Manager, workers int) error {
	b := ctrl.NewControllerManagedBy(mgr).
		Named("playbackstream").
		For(&v1alpha1.PlaybackStream{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, deletionStarted{}))).
		Owns(&appsv1.Deployment{}).
		WithOptions(controller.Options{
			MaxConcurrentReconciles: workers,
			// Failures back off from 0.5 s to 5 min; waiting on something
			// that will send an event (a Deployment, a KafkaTopic) costs
			// nothing, and time-based waits use RequeueAfter.
			RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[reconcile.Request](500*time.Millisecond, 5*time.Minute),
		})
	if r.topics.mode() == v1alpha1.TopicModeStrimzi {
		b = b.Owns(NewKafkaTopic())
	}
	return b.Complete(r)
}

// deletionStarted lets through the update that sets deletionTimestamp.
type deletionStarted struct{ predicate.Funcs }

func (deletionStarted) Update(e event.UpdateEvent) bool {
	return e.ObjectOld != nil && e.ObjectNew != nil &&
		e.ObjectOld.GetDeletionTimestamp().IsZero() && !e.ObjectNew.GetDeletionTimestamp().IsZero()
}

// Reconcile implements reconcile.Reconciler.
func (r *StreamReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	res, err := r.reconcile(ctx, req)
	if err != nil && ctx.Err() != nil {
		// The manager is stopping: the half-done work is not a failure, and
		// whichever controller leads next lists every stream again.
		return ctrl.Result{}, nil
	}
	return res, err
}

func (r *StreamReconciler) reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var s v1alpha1.PlaybackStream
	if err := r.client.Get(ctx, req.NamespacedName, &s); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	e := resolve(&s, r.topics.mode(), r.opts)
	if !s.DeletionTimestamp.IsZero() {
		return r.delete(ctx, &s, e)
	}
	if !controllerutil.ContainsFinalizer(&s, v1alpha1.Finalizer) {
		patch := client.MergeFromWithOptions(s.DeepCopy(), client.MergeFromWithOptimisticLock{})
		controllerutil.AddFinalizer(&s, v1alpha1.Finalizer)
		if err := r.client.Patch(ctx, &s, patch); err != nil {
			return ctrl.Result{}, fmt.Errorf("add finalizer: %w", err)
		}
	}

	topic, topicErr := r.topics.ensure(ctx, &s, e)
	prod, prodErr := r.producers.ensure(ctx, &s, e, topic.ready())
	status, after := computeStatus(statusInput{
		Generation: s.Generation, Old: s.Status, E: e, Topic: topic, Producer: prod,
		Now: r.clock.Now(), TopicReadyTimeout: r.opts.TopicReadyTimeout,
	})
	r.record(&s, e, topic, prod, status)
	if err := r.writeStatus(ctx, &s, status); err != nil {
		return ctrl.Result{}, err
	}
	if err := errors.Join(topicErr, prodErr); err != nil {
		return ctrl.Result{}, err // retried with backoff; the status says why
	}
	if topic.Poll > 0 && (after == 0 || topic.Poll < after) {
		after = topic.Poll
	}
	return ctrl.Result{RequeueAfter: after}, nil
}

// delete stops the producers, applies the topic's deletion policy, then
// lets the stream go. The owner references would remove the Deployment and
// the KafkaTopic too, but only after the stream is gone and only where a
// garbage collector runs; doing it here keeps the order right (no producer
// writes to a topic being deleted) and the policy explicit.
func (r *StreamReconciler) delete(ctx context.Context, s *v1alpha1.PlaybackStream, e effective) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(s, v1alpha1.Finalizer) {
		return ctrl.Result{}, nil
	}
	var dep appsv1.Deployment
	err := r.client.Get(ctx, client.ObjectKey{Namespace: s.Namespace, Name: e.Deployment}, &dep)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return ctrl.Result{}, err
	case controllerUID(&dep) == s.UID && dep.DeletionTimestamp.IsZero():
		if err := r.client.Delete(ctx, &dep, client.Preconditions{UID: &dep.UID}, client.PropagationPolicy(metav1.DeletePropagationBackground)); err != nil && !apierrors.IsNotFound(err) {
			return ctrl.Result{}, r.deleting(ctx, s, fmt.Sprintf("cannot delete the producers (Deployment %s): %v", e.Deployment, err), err)
		}
	}
	done, msg, err := r.topics.finalize(ctx, s, e)
	if err != nil {
		return ctrl.Result{}, r.deleting(ctx, s, err.Error(), err)
	}
	if !done {
		return ctrl.Result{RequeueAfter: 2 * time.Second}, r.deleting(ctx, s, msg, nil)
	}
	r.recorder.Eventf(s, nil, corev1.EventTypeNormal, "Deleted", "Delete", "%s", msg)
	patch := client.MergeFromWithOptions(s.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(s, v1alpha1.Finalizer)
	if err := r.client.Patch(ctx, s, patch); err != nil && !apierrors.IsNotFound(err) {
		return ctrl.Result{}, fmt.Errorf("remove finalizer: %w", err)
	}
	return ctrl.Result{}, nil
}

// deleting reports a deletion that waits or failed in the Ready condition,
// and returns cause.
func (r *StreamReconciler) deleting(ctx context.Context, s *v1alpha1.PlaybackStream, msg string, cause error) error {
	st := *s.Status.DeepCopy()
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonDeleting,
		Message: "deleting: " + msg, ObservedGeneration: s.Generation, LastTransitionTime: metav1.NewTime(r.clock.Now()),
	})
	if err := r.writeStatus(ctx, s, st); err != nil && !apierrors.IsNotFound(err) {
		return errors.Join(cause, err)
	}
	return cause
}

func (r *StreamReconciler) writeStatus(ctx context.Context, s *v1alpha1.PlaybackStream, st v1alpha1.PlaybackStreamStatus) error {
	if equality.Semantic.DeepEqual(s.Status, st) {
		return nil
	}
	patch := client.MergeFrom(s.DeepCopy())
	s.Status = st
	if err := r.client.Status().Patch(ctx, s, patch); err != nil {
		return fmt.Errorf("update status: %w", err)
	}
	return nil
}

// record emits Kubernetes events for what this reconcile changed and for
// condition changes, so `kubectl describe playbackstream` tells the story
// without repeating itself on every reconcile.
func (r *StreamReconciler) record(s *v1alpha1.PlaybackStream, e effective, topic topicState, prod producerState, st v1alpha1.PlaybackStreamStatus) {
	for _, n := range topic.Done {
		r.recorder.Eventf(s, nil, corev1.EventTypeNormal, n.Reason, n.Action, "%s", n.Message)
	}
	switch {
	case prod.Created:
		r.recorder.Eventf(s, nil, corev1.EventTypeNormal, "ProducersCreated", "Create",
			"created Deployment %s: %d producers at %s events/s each (%d events/s in total) into topic %s", e.Deployment, e.Replicas, formatRate(e.Share), e.Rate, topic.Name)
	case prod.Changed:
		r.recorder.Eventf(s, nil, corev1.EventTypeNormal, "ProducersUpdated", "Update",
			"rolling out Deployment %s: %d producers at %s events/s each (%d events/s in total)", e.Deployment, e.Replicas, formatRate(e.Share), e.Rate)
	}
	if st.ActiveIncidents != s.Status.ActiveIncidents {
		if st.ActiveIncidents == "" {
			r.recorder.Eventf(s, nil, corev1.EventTypeNormal, "IncidentsOver", "Reconcile", "no incident in effect (was: %s)", s.Status.ActiveIncidents)
		} else {
			r.recorder.Eventf(s, nil, corev1.EventTypeNormal, "IncidentActive", "Reconcile", "in effect now: %s", describeActive(prod.Incidents, r.clock.Now()))
		}
	}
	for _, t := range []string{v1alpha1.ConditionTopicReady, v1alpha1.ConditionProducerReady} {
		now := meta.FindStatusCondition(st.Conditions, t)
		old := meta.FindStatusCondition(s.Status.Conditions, t)
		if now == nil || (old != nil && old.Status == now.Status && old.Reason == now.Reason) {
			continue
		}
		typ := corev1.EventTypeNormal
		if now.Status == metav1.ConditionFalse {
			typ = corev1.EventTypeWarning
		}
		r.recorder.Eventf(s, nil, typ, now.Reason, "Reconcile", "%s", now.Message)
	}
}
