package v1alpha1

// Condition types of a PlaybackStream.
const (
	// ConditionReady is True when the topic is ready and every producer pod
	// runs the current spec. Its reason and message are those of the first
	// thing that is not ready.
	ConditionReady = "Ready"
	// ConditionTopicReady is about the Kafka topic.
	ConditionTopicReady = "TopicReady"
	// ConditionProducerReady is about the producer Deployment.
	ConditionProducerReady = "ProducerReady"
)

// Reasons of the conditions. docs/playbackstream.md explains each one and
// what to do about it.
const (
	// Ready.
	ReasonProducing    = "Producing"    // True: events flow at the asked rate
	ReasonPaused       = "Paused"       // True: eventsPerSecond is 0
	ReasonScaledToZero = "ScaledToZero" // True: replicas is 0
	ReasonDeleting     = "Deleting"     // False: the stream is being deleted

	// TopicReady.
	ReasonTopicReady                 = "TopicReady"                 // True
	ReasonWaitingForTopicOperator    = "WaitingForTopicOperator"    // Unknown: KafkaTopic applied, no answer yet
	ReasonTopicOperatorNotResponding = "TopicOperatorNotResponding" // False: no answer within CONTROLLER_TOPIC_READY_TIMEOUT
	ReasonKafkaTopicNotReady         = "KafkaTopicNotReady"         // False: Strimzi said not ready without a reason
	ReasonTopicConflict              = "TopicConflict"              // False: the KafkaTopic belongs to something else
	ReasonKafkaUnreachable           = "KafkaUnreachable"           // False: Kafka admin mode cannot connect
	ReasonTopicCreating              = "TopicCreating"              // Unknown: Kafka accepted the topic, metadata not complete yet
	ReasonKafkaError                 = "KafkaError"                 // False: Kafka refused a topic operation
	ReasonPartitionDecrease          = "PartitionDecreaseNotSupported"
	ReasonReplicationFactorMismatch  = "ReplicationFactorMismatch"
	ReasonApplyFailed                = "ApplyFailed" // False: the API server refused an object the controller applies

	// ProducerReady.
	ReasonProducersReady           = "ProducersReady"           // True
	ReasonWaitingForTopic          = "WaitingForTopic"          // False: producers start once the topic is ready
	ReasonRollingOut               = "RollingOut"               // False: pods with the new spec are starting
	ReasonProducersNotReady        = "ProducersNotReady"        // False: some pods are not ready
	ReasonProgressDeadlineExceeded = "ProgressDeadlineExceeded" // False: the Deployment gave up progressing
	ReasonReplicaFailure           = "ReplicaFailure"           // False: pods cannot be created (quota, admission)
	ReasonRateAboveReplicaLimit    = "RateAboveReplicaLimit"    // False: share above CONTROLLER_MAX_RATE_PER_REPLICA
)

// Finalizer is the PlaybackStream finalizer: on deletion the controller
// stops the producers and applies the topic's deletion policy before the
// stream goes.
const Finalizer = "playpulse.dev/cleanup"

// Labels and annotations the controller puts on what it creates.
const (
	// LabelStream names the PlaybackStream on its KafkaTopic, Deployment
	// and pods.
	LabelStream = "playpulse.dev/stream"
	// AnnotationConfigHash on the producer pod template is a hash of the
	// effective producer configuration, so any change rolls the pods.
	AnnotationConfigHash = "playpulse.dev/config-hash"
)
