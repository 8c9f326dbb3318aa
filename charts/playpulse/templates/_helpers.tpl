{{/*
Names. The release "playpulse" gives playpulse-controller, playpulse-fanout,
playpulse-collector.
*/}}
{{- define "playpulse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "playpulse.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "playpulse.controller.fullname" -}}
{{- printf "%s-controller" (include "playpulse.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "playpulse.fanout.fullname" -}}
{{- printf "%s-fanout" (include "playpulse.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The fan-outs evaluate the QoEAlerts themselves: they mount the rules
ConfigMap the controller writes, and the controller reads their alerts
back. Both must run in this release, or the fan-outs would wait for a file
nobody writes.
*/}}
{{- define "playpulse.alertsInFanout" -}}
{{- if and .Values.alerts.inFanout.enabled .Values.controller.enabled .Values.fanout.enabled }}true{{ end }}
{{- end }}

{{- define "playpulse.aggregator.fullname" -}}
{{- printf "%s-aggregator" (include "playpulse.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The aggregation tier runs: aggregators read the raw topics in a consumer
group and the fan-outs merge their partials (FANOUT_ROLE=merge). Without
the fan-outs nobody would read the partials, so it needs fanout.enabled.
*/}}
{{- define "playpulse.aggregation" -}}
{{- if and .Values.aggregation.enabled .Values.fanout.enabled }}true{{ end }}
{{- end }}

{{/*
"true" when the aggregators scale through a KEDA ScaledObject: autoscaling
is on and the cluster serves ScaledObjects (helm template sees no cluster:
pass --api-versions keda.sh/v1alpha1/ScaledObject). Otherwise an HPA on the
external metric playpulse_aggregator_lag.
*/}}
{{- define "playpulse.aggregation.keda" -}}
{{- if and (include "playpulse.aggregation" .) .Values.aggregation.autoscaling.enabled (.Capabilities.APIVersions.Has "keda.sh/v1alpha1/ScaledObject") }}true{{ end }}
{{- end }}

{{- define "playpulse.collector.fullname" -}}
{{- printf "%s-collector" (include "playpulse.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "playpulse.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels: every object gets playpulse.labels; pods and selectors use
playpulse.selectorLabels plus app.kubernetes.io/component.
*/}}
{{- define "playpulse.labels" -}}
helm.sh/chart: {{ include "playpulse.chart" . }}
{{ include "playpulse.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: playpulse
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "playpulse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "playpulse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "playpulse.controller.selectorLabels" -}}
{{ include "playpulse.selectorLabels" . }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "playpulse.fanout.selectorLabels" -}}
{{ include "playpulse.selectorLabels" . }}
app.kubernetes.io/component: fanout
{{- end }}

{{- define "playpulse.aggregator.selectorLabels" -}}
{{ include "playpulse.selectorLabels" . }}
app.kubernetes.io/component: aggregator
{{- end }}

{{- define "playpulse.collector.selectorLabels" -}}
{{ include "playpulse.selectorLabels" . }}
app.kubernetes.io/component: collector
{{- end }}

{{- define "playpulse.controller.serviceAccountName" -}}
{{- if .Values.controller.serviceAccount.create }}
{{- default (include "playpulse.controller.fullname" .) .Values.controller.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.controller.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
An image reference: registry/repository:tag or registry/repository@digest.
Call with (dict "image" .Values.x.image "root" $).
*/}}
{{- define "playpulse.image" -}}
{{- $registry := .image.registry | default .root.Values.image.registry -}}
{{- $repo := .image.repository -}}
{{- if $registry }}{{ $repo = printf "%s/%s" (trimSuffix "/" $registry) $repo }}{{ end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (.image.tag | default .root.Values.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}
{{- end }}

{{- define "playpulse.imagePullPolicy" -}}
{{- .image.pullPolicy | default .root.Values.image.pullPolicy -}}
{{- end }}

{{/* The Strimzi Kafka cluster the services use. */}}
{{- define "playpulse.kafka.clusterName" -}}
{{- .Values.kafka.clusterName -}}
{{- end }}

{{/*
Bootstrap servers: kafka.bootstrapServers, or the plain listener of the
Strimzi cluster <clusterName> in the release namespace.
*/}}
{{- define "playpulse.kafka.bootstrapServers" -}}
{{- if .Values.kafka.bootstrapServers -}}
{{- .Values.kafka.bootstrapServers -}}
{{- else -}}
{{- printf "%s-kafka-bootstrap.%s.svc:%d" .Values.kafka.clusterName .Release.Namespace (int .Values.kafka.listenerPort) -}}
{{- end -}}
{{- end }}

{{/*
Kafka client environment shared by the services (kafkacfg.Config). Secrets
are mounted as files (playpulse.kafka.volumes / volumeMounts), never put in
the environment.
*/}}
{{- define "playpulse.kafka.env" -}}
- name: KAFKA_BROKERS
  value: {{ include "playpulse.kafka.bootstrapServers" . | quote }}
{{- with .Values.kafka.clientId }}
- name: KAFKA_CLIENT_ID
  value: {{ . | quote }}
{{- end }}
{{- with .Values.kafka.protocolVersion }}
- name: KAFKA_VERSION
  value: {{ . | quote }}
{{- end }}
{{- if .Values.kafka.tls.enabled }}
- name: KAFKA_TLS
  value: "true"
{{- if .Values.kafka.tls.caSecret.name }}
- name: KAFKA_TLS_CA_FILE
  value: {{ printf "/etc/playpulse/kafka-ca/%s" .Values.kafka.tls.caSecret.key | quote }}
{{- end }}
{{- if .Values.kafka.tls.clientSecret.name }}
- name: KAFKA_TLS_CERT_FILE
  value: {{ printf "/etc/playpulse/kafka-client/%s" .Values.kafka.tls.clientSecret.certKey | quote }}
- name: KAFKA_TLS_KEY_FILE
  value: {{ printf "/etc/playpulse/kafka-client/%s" .Values.kafka.tls.clientSecret.keyKey | quote }}
{{- end }}
{{- if .Values.kafka.tls.insecureSkipVerify }}
- name: KAFKA_TLS_INSECURE_SKIP_VERIFY
  value: "true"
{{- end }}
{{- end }}
{{- if .Values.kafka.sasl.mechanism }}
- name: KAFKA_SASL_MECHANISM
  value: {{ .Values.kafka.sasl.mechanism | quote }}
- name: KAFKA_SASL_USERNAME
  value: {{ .Values.kafka.sasl.username | quote }}
- name: KAFKA_SASL_PASSWORD_FILE
  value: {{ printf "/etc/playpulse/kafka-sasl/%s" .Values.kafka.sasl.passwordSecret.key | quote }}
{{- end }}
{{- end }}

{{- define "playpulse.kafka.volumeMounts" -}}
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.caSecret.name }}
- name: kafka-ca
  mountPath: /etc/playpulse/kafka-ca
  readOnly: true
{{- end }}
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.clientSecret.name }}
- name: kafka-client
  mountPath: /etc/playpulse/kafka-client
  readOnly: true
{{- end }}
{{- if .Values.kafka.sasl.mechanism }}
- name: kafka-sasl
  mountPath: /etc/playpulse/kafka-sasl
  readOnly: true
{{- end }}
{{- end }}

{{- define "playpulse.kafka.volumes" -}}
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.caSecret.name }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafka.tls.caSecret.name }}
    items:
      - key: {{ .Values.kafka.tls.caSecret.key }}
        path: {{ .Values.kafka.tls.caSecret.key }}
{{- end }}
{{- if and .Values.kafka.tls.enabled .Values.kafka.tls.clientSecret.name }}
- name: kafka-client
  secret:
    secretName: {{ .Values.kafka.tls.clientSecret.name }}
    items:
      - key: {{ .Values.kafka.tls.clientSecret.certKey }}
        path: {{ .Values.kafka.tls.clientSecret.certKey }}
      - key: {{ .Values.kafka.tls.clientSecret.keyKey }}
        path: {{ .Values.kafka.tls.clientSecret.keyKey }}
{{- end }}
{{- if .Values.kafka.sasl.mechanism }}
- name: kafka-sasl
  secret:
    secretName: {{ required "kafka.sasl.passwordSecret.name is required when kafka.sasl.mechanism is set" .Values.kafka.sasl.passwordSecret.name }}
    items:
      - key: {{ .Values.kafka.sasl.passwordSecret.key }}
        path: {{ .Values.kafka.sasl.passwordSecret.key }}
{{- end }}
{{- end }}

{{/*
A config map's value as an environment variable's: YAML integers reach the
templates as float64, and toString writes 2000000 as "2e+06", which no
integer variable accepts; whole numbers are written as integers.
*/}}
{{- define "playpulse.envValue" -}}
{{- if and (kindIs "float64" .) (eq (float64 (int64 .)) .) -}}
{{- int64 . | toString | quote -}}
{{- else -}}
{{- toString . | quote -}}
{{- end -}}
{{- end }}

{{/* Pod and container security: the same hardened settings for every pod. */}}
{{- define "playpulse.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "playpulse.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: {{ .Values.readOnlyRootFilesystem }}
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Pod annotations: Prometheus scrape annotations for /metrics on port (unless
metrics.scrapeAnnotations is off) plus the component's podAnnotations.
Call with (dict "root" $ "port" 8080 "extra" .Values.x.podAnnotations).
*/}}
{{- define "playpulse.podAnnotations" -}}
{{- $ann := dict }}
{{- if .root.Values.metrics.scrapeAnnotations }}
{{- $_ := set $ann "prometheus.io/scrape" "true" }}
{{- $_ := set $ann "prometheus.io/port" (toString .port) }}
{{- $_ := set $ann "prometheus.io/path" "/metrics" }}
{{- end }}
{{- $ann = merge (deepCopy (.extra | default dict)) $ann }}
{{- with $ann }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
The objects the fan-out and the collector both have, the same but for their
names and values. Call each with
(dict "root" $ "component" "fanout" "name" <full name> "values" .Values.fanout).
*/}}
{{- define "playpulse.componentMeta" -}}
name: {{ .name }}
namespace: {{ .root.Release.Namespace }}
labels:
  {{- include "playpulse.labels" .root | nindent 2 }}
  app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "playpulse.componentSelector" -}}
{{ include "playpulse.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* A PodDisruptionBudget: values.podDisruptionBudget.maxUnavailable at once. */}}
{{- define "playpulse.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  {{- include "playpulse.componentMeta" . | nindent 2 }}
spec:
  maxUnavailable: {{ .values.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "playpulse.componentSelector" . | nindent 6 }}
{{- end }}

{{/*
A HorizontalPodAutoscaler on CPU that scales down one pod at a time, slowly
(the caller says why its component needs that).
*/}}
{{- define "playpulse.hpa" -}}
{{- $a := .values.autoscaling -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  {{- include "playpulse.componentMeta" . | nindent 2 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ .name }}
  minReplicas: {{ $a.minReplicas }}
  maxReplicas: {{ $a.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $a.targetCPUUtilizationPercentage }}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 300
      policies:
        - type: Pods
          value: 1
          periodSeconds: 120
{{- end }}

{{/*
A NetworkPolicy: ingress only to the http port (from
values.networkPolicy.ingressFrom, or from anyone), egress only to DNS and to
Kafka (kafkaPorts, on kafkaTo or any address).
*/}}
{{- define "playpulse.networkPolicy" -}}
{{- $np := .values.networkPolicy -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  {{- include "playpulse.componentMeta" . | nindent 2 }}
spec:
  podSelector:
    matchLabels:
      {{- include "playpulse.componentSelector" . | nindent 6 }}
  policyTypes:
    - Ingress
    - Egress
  ingress:
    # One port: what the component serves, its probes and Prometheus.
    - ports:
        - port: http
          protocol: TCP
      {{- with $np.ingressFrom }}
      from:
        {{- toYaml . | nindent 8 }}
      {{- end }}
  egress:
    # DNS, to resolve the bootstrap servers and the brokers they advertise.
    - ports:
        - port: 53
          protocol: UDP
        - port: 53
          protocol: TCP
    # Kafka, and nothing else.
    - ports:
        {{- range $np.kafkaPorts }}
        - port: {{ . }}
          protocol: TCP
        {{- end }}
      {{- with $np.kafkaTo }}
      to:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{/*
"true" when the chart renders Strimzi KafkaTopics for the collector's topics
(collector.topics.create: strimzi, or auto with kafka.create or a cluster
that serves KafkaTopics; helm template sees no cluster, so auto there
follows kafka.create, or --api-versions kafka.strimzi.io/v1/KafkaTopic).
*/}}
{{- define "playpulse.collector.strimziTopics" -}}
{{- include "playpulse.strimziTopics" (dict "root" . "mode" .Values.collector.topics.create) -}}
{{- end }}

{{/* The same decision for the aggregates topic (aggregation.topic.create). */}}
{{- define "playpulse.aggregation.strimziTopics" -}}
{{- include "playpulse.strimziTopics" (dict "root" . "mode" .Values.aggregation.topic.create) -}}
{{- end }}

{{/* Call with (dict "root" $ "mode" "auto"|"strimzi"|"none"). */}}
{{- define "playpulse.strimziTopics" -}}
{{- $mode := .mode -}}
{{- if or (eq $mode "strimzi") (and (eq $mode "auto") (or .root.Values.kafka.create (.root.Capabilities.APIVersions.Has "kafka.strimzi.io/v1/KafkaTopic"))) -}}
true
{{- end -}}
{{- end }}
