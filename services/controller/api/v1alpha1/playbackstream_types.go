package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// MaxEventsPerSecondPerReplica is the most events per second the controller
// gives one producer pod: the highest per-process rate at which the producer
// is proven accurate (its config.AccurateRate, well below the PRODUCER_RATE
// maximum it accepts; contract tests in tests/controller check both). The
// CEL rule on PlaybackStreamSpec repeats the number, because a generated CRD
// cannot read Go constants; a unit test checks the generated CRD carries it.
const MaxEventsPerSecondPerReplica = 50_000

// MaxReplicas is the most producer pods one stream may ask for.
const MaxReplicas = 100

// DeletionPolicy says what happens to the Kafka topic when its
// PlaybackStream is deleted.
// +kubebuilder:validation:Enum=Retain;Delete
type DeletionPolicy string

const (
	// DeletionPolicyRetain keeps the topic and its events in Kafka.
	DeletionPolicyRetain DeletionPolicy = "Retain"
	// DeletionPolicyDelete deletes the topic with the stream.
	DeletionPolicyDelete DeletionPolicy = "Delete"
)

// TopicSpec describes the Kafka topic a stream writes to.
//
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.partitions) || (has(self.partitions) && self.partitions >= oldSelf.partitions)",messageExpression="'topic.partitions cannot decrease from %d to %d: Kafka cannot remove partitions from a topic'.format([oldSelf.partitions, has(self.partitions) ? self.partitions : 3])"
// +kubebuilder:validation:XValidation:rule="has(self.name) == has(oldSelf.name) && (!has(self.name) || self.name == oldSelf.name)",message="topic.name cannot change: the producers would move to another topic and leave the old one behind; create a new PlaybackStream instead"
// +kubebuilder:validation:XValidation:rule="has(self.replicationFactor) == has(oldSelf.replicationFactor) && (!has(self.replicationFactor) || self.replicationFactor == oldSelf.replicationFactor)",message="topic.replicationFactor cannot change after creation (Kafka needs a partition reassignment for that); create a new PlaybackStream instead"
type TopicSpec struct {
	// Name of the Kafka topic. Default: playback-<stream name>, which the
	// fan-out's default topic pattern picks up. Cannot change.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=249
	// +kubebuilder:validation:Pattern=`^[a-zA-Z0-9._-]+$`
	// +kubebuilder:validation:XValidation:rule="self != '.' && self != '..'",message="topic.name cannot be '.' or '..'"
	// +optional
	Name string `json:"name,omitempty"`

	// Partitions of the topic. It can grow, never shrink.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	// +kubebuilder:default=3
	// +optional
	Partitions int32 `json:"partitions,omitempty"`

	// ReplicationFactor of the topic. Default: the broker's
	// default.replication.factor. Cannot change.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=32767
	// +optional
	ReplicationFactor *int32 `json:"replicationFactor,omitempty"`

	// Retention of the topic's events (retention.ms), as a duration such as
	// 24h or 30m. Default: the broker's log.retention settings.
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('1m')",message="topic.retention must be at least 1m"
	// +optional
	Retention *metav1.Duration `json:"retention,omitempty"`

	// DeletionPolicy: Retain keeps the topic in Kafka when the stream is
	// deleted (a Strimzi KafkaTopic is first marked
	// strimzi.io/managed: "false", so the Topic Operator lets go of it);
	// Delete deletes the topic and its events.
	// +kubebuilder:default=Retain
	// +optional
	DeletionPolicy DeletionPolicy `json:"deletionPolicy,omitempty"`
}

// KafkaSpec says which Kafka cluster a stream uses.
//
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.cluster) || (has(self.cluster) && self.cluster == oldSelf.cluster)",message="kafka.cluster cannot change once set: the KafkaTopic belongs to its cluster's Topic Operator; create a new PlaybackStream instead"
// +kubebuilder:validation:XValidation:rule="!has(self.authentication) || self.authentication.type != 'tls' || has(self.tls)",message="authentication type tls is mutual TLS: set kafka.tls.trustedCertificates too"
type KafkaSpec struct {
	// Cluster is the Strimzi Kafka cluster's name (the KafkaTopic's
	// strimzi.io/cluster label). Default: the controller's
	// CONTROLLER_KAFKA_CLUSTER.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	// +optional
	Cluster string `json:"cluster,omitempty"`

	// BootstrapServers the producers (and, without Strimzi, the controller)
	// connect to: comma-separated host:port. Default with Strimzi:
	// <cluster>-kafka-bootstrap:9092; without: the controller's
	// KAFKA_BROKERS.
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^[^,\s:]+:[0-9]{1,5}(,[^,\s:]+:[0-9]{1,5})*$`
	// +optional
	BootstrapServers string `json:"bootstrapServers,omitempty"`

	// TLS makes the producers connect with TLS, trusting the given CA
	// (Strimzi: the <cluster>-cluster-ca-cert secret, key ca.crt). With
	// Strimzi and no bootstrapServers, the derived address uses port 9093,
	// Strimzi's TLS listener.
	// +optional
	TLS *KafkaTLS `json:"tls,omitempty"`

	// Authentication of the producers, in Strimzi's KafkaUser terms.
	// +optional
	Authentication *KafkaAuthentication `json:"authentication,omitempty"`
}

// KafkaTLS is the trust the producers need for a TLS listener. The shape
// follows Strimzi's own clients (KafkaConnect, KafkaBridge).
type KafkaTLS struct {
	// TrustedCertificates: the CA certificate to trust (one; the
	// producers read a single PEM file, which may hold several CAs).
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=1
	TrustedCertificates []CertSecretSource `json:"trustedCertificates"`
}

// CertSecretSource names a certificate in a Secret of the stream's
// namespace.
type CertSecretSource struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName"`
	// Certificate is the key of the PEM certificate in the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Certificate string `json:"certificate"`
}

// KafkaAuthentication says how the producers authenticate.
//
// +kubebuilder:validation:XValidation:rule="self.type == 'tls' ? has(self.certificateAndKey) && !has(self.passwordSecret) : has(self.username) && has(self.passwordSecret) && !has(self.certificateAndKey)",message="authentication type tls needs certificateAndKey; the SASL types (scram-sha-512, scram-sha-256, plain) need username and passwordSecret"
type KafkaAuthentication struct {
	// Type: tls (mutual TLS, needs spec.kafka.tls), scram-sha-512,
	// scram-sha-256 or plain.
	// +kubebuilder:validation:Enum=tls;scram-sha-512;scram-sha-256;plain
	Type string `json:"type"`
	// Username for the SASL types (Strimzi: the KafkaUser's name).
	// +kubebuilder:validation:MaxLength=253
	// +optional
	Username string `json:"username,omitempty"`
	// PasswordSecret for the SASL types (Strimzi: the KafkaUser's
	// secret, key password).
	// +optional
	PasswordSecret *PasswordSecretSource `json:"passwordSecret,omitempty"`
	// CertificateAndKey for type tls (Strimzi: the KafkaUser's secret,
	// keys user.crt and user.key).
	// +optional
	CertificateAndKey *CertAndKeySecretSource `json:"certificateAndKey,omitempty"`
}

// PasswordSecretSource names a password in a Secret of the stream's
// namespace.
type PasswordSecretSource struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName"`
	// Password is the key of the password in the Secret.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Password string `json:"password"`
}

// CertAndKeySecretSource names a client certificate and its key in a
// Secret of the stream's namespace.
type CertAndKeySecretSource struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	SecretName string `json:"secretName"`
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Certificate string `json:"certificate"`
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Key string `json:"key"`
}

// DeviceMix is the share of viewing time per device, as relative weights
// (normalised; a device left out gets 0).
//
// +kubebuilder:validation:XValidation:rule="(has(self.tv) ? self.tv : 0) + (has(self.mobile) ? self.mobile : 0) + (has(self.desktop) ? self.desktop : 0) + (has(self.tablet) ? self.tablet : 0) > 0",message="profile.deviceMix needs at least one device with a positive weight"
type DeviceMix struct {
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	TV int32 `json:"tv,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Mobile int32 `json:"mobile,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Desktop int32 `json:"desktop,omitempty"`
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	Tablet int32 `json:"tablet,omitempty"`
}

// ProfileSpec is the simulated audience: the producer's simulator knobs.
// The defaults are the producer's own defaults.
type ProfileSpec struct {
	// CatalogSize is the number of titles (PRODUCER_CATALOG_SIZE).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	// +kubebuilder:default=2000
	// +optional
	CatalogSize int32 `json:"catalogSize,omitempty"`

	// ZipfAlpha is the exponent of title popularity, P(rank n) ∝ n^-alpha
	// (PRODUCER_ZIPF_ALPHA); higher means a few hits get most views.
	// +kubebuilder:validation:ExclusiveMinimum=true
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=5
	// +kubebuilder:default=0.9
	// +optional
	ZipfAlpha float64 `json:"zipfAlpha,omitempty"`

	// DeviceMix is the share of viewing time by device
	// (PRODUCER_DEVICE_MIX).
	// +kubebuilder:default={tv:72,mobile:12,desktop:11,tablet:5}
	// +optional
	DeviceMix *DeviceMix `json:"deviceMix,omitempty"`

	// StallIntensity is the target rebuffering ratio, stall time / (play
	// time + stall time) after the first frame (PRODUCER_REBUFFER_RATIO).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=0.3
	// +kubebuilder:default=0.005
	// +optional
	StallIntensity *float64 `json:"stallIntensity,omitempty"`

	// StartFailureRate is the fraction of start attempts that fail before
	// the first frame (PRODUCER_START_FAILURE_RATE).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=0.5
	// +kubebuilder:default=0.02
	// +optional
	StartFailureRate *float64 `json:"startFailureRate,omitempty"`

	// Seed of the simulator (PRODUCER_SEED), for reproducible events. Absent
	// or 0: the controller derives a seed from the stream's UID, stable for
	// the stream's life (it never rolls the producers by itself) and
	// different for every stream. Every replica gets the same seed and mixes
	// its own instance id into it, so replicas simulate different viewers;
	// a producer run with the same seed and PRODUCER_ID draws the same
	// audience again.
	// +kubebuilder:validation:Minimum=0
	// +optional
	Seed *int64 `json:"seed,omitempty"`
}

// ProducerSpec holds settings of the producer pods.
type ProducerSpec struct {
	// Image of the producer. Default: the controller's
	// CONTROLLER_PRODUCER_IMAGE.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +optional
	Image string `json:"image,omitempty"`

	// Resources of the producer container. Default: requests cpu 100m,
	// memory 128Mi; limits memory 512Mi.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`
}

// PlaybackStreamSpec is the load a stream asks for.
//
// +kubebuilder:validation:XValidation:rule="!has(self.eventsPerSecond) || self.eventsPerSecond <= (has(self.replicas) ? self.replicas : 1) * 50000",messageExpression="'eventsPerSecond %d needs at least %d replicas (one producer sends at most 50000 events/s), but replicas is %d'.format([self.eventsPerSecond, (self.eventsPerSecond + 49999) / 50000, has(self.replicas) ? self.replicas : 1])"
// +kubebuilder:validation:XValidation:rule="!has(self.incidents) || self.incidents.all(i, !has(i.flashCrowd) || double(has(self.eventsPerSecond) ? self.eventsPerSecond : 100) * (has(i.flashCrowd.factor) ? i.flashCrowd.factor : 3.0) <= double(has(self.replicas) ? self.replicas : 1) * 50000.0)",message="a flashCrowd multiplies the event rate: eventsPerSecond × factor must stay within replicas × 50000 (one producer sends at most 50000 events/s); add replicas or lower the factor"
type PlaybackStreamSpec struct {
	// EventsPerSecond is the target rate of the whole stream; each producer
	// replica sends its share. 0 pauses the stream (producers stay
	// connected and send nothing).
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=5000000
	// +kubebuilder:default=100
	// +optional
	EventsPerSecond int64 `json:"eventsPerSecond"`

	// Replicas is the number of producer pods (also through
	// `kubectl scale`). One sends at most 50000 events/s.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +kubebuilder:default=1
	// +optional
	Replicas int32 `json:"replicas"`

	// Topic is the Kafka topic the events go to.
	// +kubebuilder:default={}
	// +optional
	Topic TopicSpec `json:"topic,omitempty"`

	// Kafka is the cluster the topic lives in.
	// +kubebuilder:default={}
	// +optional
	Kafka KafkaSpec `json:"kafka,omitempty"`

	// Profile is the simulated audience.
	// +kubebuilder:default={}
	// +optional
	Profile ProfileSpec `json:"profile,omitempty"`

	// Producer holds settings of the producer pods.
	// +optional
	Producer ProducerSpec `json:"producer,omitempty"`

	// Incidents are faults in the simulated audience, now or scheduled,
	// to rehearse alerting (docs/alerts.md): a CDN degrades, a device
	// class fails, a flash crowd arrives.
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=16
	// +optional
	Incidents []Incident `json:"incidents,omitempty"`
}

// TopicMode is how the controller manages a stream's topic.
// +kubebuilder:validation:Enum=Strimzi;Kafka
type TopicMode string

const (
	// TopicModeStrimzi: through a Strimzi KafkaTopic.
	TopicModeStrimzi TopicMode = "Strimzi"
	// TopicModeKafka: directly through the Kafka admin API.
	TopicModeKafka TopicMode = "Kafka"
)

// PlaybackStreamStatus is what the controller did and observed.
type PlaybackStreamStatus struct {
	// ObservedGeneration is the metadata.generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready (the whole stream), TopicReady, ProducerReady.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// TopicName is the Kafka topic the producers write to.
	// +optional
	TopicName string `json:"topicName,omitempty"`

	// TopicMode is how the topic is managed: Strimzi (a KafkaTopic) or
	// Kafka (the Kafka admin API).
	// +optional
	TopicMode TopicMode `json:"topicMode,omitempty"`

	// KafkaTopic is the name of the Strimzi KafkaTopic (Strimzi mode).
	// +optional
	KafkaTopic string `json:"kafkaTopic,omitempty"`

	// Replicas is the number of producer pods that exist.
	// +optional
	Replicas int32 `json:"replicas,omitempty"`

	// ReadyReplicas is the number of producer pods that are ready.
	// +optional
	ReadyReplicas int32 `json:"readyReplicas,omitempty"`

	// Selector selects the producer pods (label selector in string form,
	// for the scale subresource).
	// +optional
	Selector string `json:"selector,omitempty"`

	// EventsPerSecondPerReplica is the rate each producer pod is set to.
	// +optional
	EventsPerSecondPerReplica float64 `json:"eventsPerSecondPerReplica,omitempty"`
	// Incidents is the window of each incident in spec.incidents, as the
	// producers apply it.
	// +listType=map
	// +listMapKey=name
	// +optional
	Incidents []IncidentStatus `json:"incidents,omitempty"`

	// ActiveIncidents names the incidents in effect now, comma-separated.
	// +optional
	ActiveIncidents string `json:"activeIncidents,omitempty"`

	// NextIncidentChange is when an incident starts or ends next.
	// +optional
	NextIncidentChange *metav1.Time `json:"nextIncidentChange,omitempty"`
}

// PlaybackStream is one simulated audience: the controller turns it into a
// Kafka topic (a Strimzi KafkaTopic, or through the Kafka admin API) and a
// producer Deployment that publishes eventsPerSecond events per second.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:subresource:scale:specpath=.spec.replicas,statuspath=.status.replicas,selectorpath=.status.selector
// +kubebuilder:resource:shortName=pbs;pstream,categories=playpulse
// +kubebuilder:printcolumn:name="Rate",type=integer,JSONPath=`.spec.eventsPerSecond`,description="target events per second of the whole stream"
// +kubebuilder:printcolumn:name="Replicas",type=integer,JSONPath=`.spec.replicas`,description="producer pods asked for"
// +kubebuilder:printcolumn:name="Ready",type=integer,JSONPath=`.status.readyReplicas`,description="producer pods ready"
// +kubebuilder:printcolumn:name="Topic",type=string,JSONPath=`.status.topicName`,description="Kafka topic"
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,description="reason of the Ready condition"
// +kubebuilder:printcolumn:name="Incident",type=string,JSONPath=`.status.activeIncidents`,description="incidents in effect now"
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].message`,priority=1
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="metadata.name must be at most 63 characters: it is a label value on the producer pods"
type PlaybackStream struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +kubebuilder:default={}
	// +optional
	Spec PlaybackStreamSpec `json:"spec,omitempty"`
	// +optional
	Status PlaybackStreamStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// PlaybackStreamList is a list of PlaybackStreams.
type PlaybackStreamList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []PlaybackStream `json:"items"`
}
