package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"playpulse.dev/tests/harness"
	"playpulse.dev/tests/kafkatest"
)

// The aggregation tier's release: its own namespace, name, consumer group
// and topics, next to (after) the chart test's on the same broker.
const (
	tierNS       = "playpulse-tier-test"
	tierRelease  = "tier"
	tierTopic    = "playback-tier" // the controller's topic of stream "tier"
	tierAggSel   = "app.kubernetes.io/instance=" + tierRelease + ",app.kubernetes.io/component=aggregator"
	tierFanSel   = "app.kubernetes.io/instance=" + tierRelease + ",app.kubernetes.io/component=fanout"
	tierMaxAggs  = 3    // the stream's partitions: more aggregators would sit idle
	tierLagPer   = 2000 // records of lag per aggregator the HPA aims for
	tierRate     = 3000 // the stream's events/s
	tierAggCPU   = "10m"
	tierFanPort  = 8080 // the chart's fanout.port
	tierWaitLong = 4 * time.Minute
)

// notedTopic is one kafka-topics.sh --create line of the install notes,
// with its --config settings.
var notedTopic = regexp.MustCompile(`kafka-topics\.sh --bootstrap-server (\S+) --create --if-not-exists --topic (\S+) --partitions (\d+)((?: --config \S+)*)\n`)

// tierKafka is the Kafka a tier release runs on and how it gets there.
type tierKafka struct {
	client    sarama.Client     // the test's own (admin) client on that Kafka
	bootstrap string            // what the release's pods use, as its notes print it
	values    []string          // the chart's kafka.* values
	stream    string            // the PlaybackStream's spec.kafka (indented 4), or ""
	secrets   map[string]string // Secrets to create first: name → directory of their keys
	group     string            // the aggregators' consumer group
}

// TestAggregationTier is a user turning the aggregation tier on with its
// one value on a cluster without KEDA: aggregator pods and merge-mode
// fan-outs, the tier's topics created as the install notes say, a
// PlaybackStream's producer feeding it, and the aggregators scaled on their
// consumer group's lag by the chart's HPA through the bed's Prometheus and
// prometheus-adapter, with docs/operations.md's adapter rule
// (hack/cluster/adapter/rules.yaml).
//
// The lag is made for sure, not hoped for: each aggregator may use 10
// millicores (a CPU limit the kubelet enforces), about 3,000 events/s at the
// measured cost of an event, and the stream sends more than the three the
// HPA may run can read. So the lag grows, the HPA goes from one aggregator
// to three, and stops there (maxReplicas, the stream's partitions).
func TestAggregationTier(t *testing.T) {
	needBed(t)
	startTier(t, tierKafka{
		client:    kafkaClient(t),
		bootstrap: bed.broker.Addr(),
		values:    []string{"--set", "kafka.bootstrapServers=" + bed.broker.Addr()},
		group:     "tier-aggregators",
	})

	// The HPA reads the lag through the external metrics API.
	hpa := tierHPA(t, "")
	_, lag := hpaReading(t, hpa, "playpulse_aggregator_lag", 0)
	t.Logf("HPA %s: ScalingActive, playpulse_aggregator_lag %d per replica", hpa, lag)
	// What the adapter serves is Prometheus's sum of the aggregators' own
	// gauges, not something else with the same name.
	raw := kubectl(t, "get", "--raw", "/apis/external.metrics.k8s.io/v1beta1/namespaces/"+tierNS+"/playpulse_aggregator_lag")
	if !strings.Contains(raw, `"metricName":"playpulse_aggregator_lag"`) {
		t.Errorf("the external metrics API: %s", raw)
	}
	prom := promQuery(t, `sum by (namespace) (max by (namespace, topic, partition) (playpulse_aggregator_lag{namespace="`+tierNS+`"}))`)
	t.Logf("external.metrics.k8s.io: %s; Prometheus: %s", strings.TrimSpace(raw), prom)

	tierScalesOut(t, hpa)
}

// TestAggregationTierOnKEDA is the same user on a cluster with KEDA and a
// secured Kafka: the bed's KEDA on (hack/cluster.sh keda on: its CRDs, its
// operator and its metrics server as the external metrics API), the chart
// installed against the secured three-node cluster's SCRAM-SHA-512 listener
// over TLS. The chart finds KEDA and renders a ScaledObject and a
// TriggerAuthentication instead of its HPA; KEDA's own Kafka client reads
// the consumer group's lag with the release's CA, user name and password
// from them, and KEDA's HPA scales the throttled aggregators 1 → 3.
func TestAggregationTierOnKEDA(t *testing.T) {
	needBed(t)
	if out, err := clusterSh("", "keda", "on"); err != nil {
		t.Fatalf("hack/cluster.sh keda on: %v\n%s", err, out)
	}
	// Registered first, so it runs last: after the release is gone.
	t.Cleanup(func() {
		if out, err := clusterSh("", "keda", "off"); err != nil {
			t.Errorf("hack/cluster.sh keda off: %v\n%s", err, out)
		}
	})
	// KEDA's two processes keep to the bed's rules like the others.
	if ps := checkBedProcesses(t); !slices.Contains(ps, "keda-operator") || !slices.Contains(ps, "keda-metrics") {
		t.Errorf("the bed's processes %v, want KEDA's operator and metrics server among them", ps)
	}
	sc := bed.secured
	client, err := sarama.NewClient(sc.Brokers(kafkatest.Plaintext), sc.Config())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	values, stream := scramOverTLS(sc)
	group := "tier-keda-aggregators"
	startTier(t, tierKafka{
		client:    client,
		bootstrap: sc.Bootstrap(kafkatest.SCRAM),
		values:    values,
		stream:    stream,
		secrets: map[string]string{
			kafkatest.ClusterCASecret: sc.Secret(kafkatest.ClusterCASecret),
			kafkatest.SCRAMUser:       sc.Secret(kafkatest.SCRAMUser),
		},
		group: group,
	})

	// The chart rendered KEDA's objects, and KEDA took them.
	so := strings.TrimSpace(kubectl(t, "-n", tierNS, "get", "scaledobjects", "-o", "jsonpath={.items[*].metadata.name}"))
	ta := strings.TrimSpace(kubectl(t, "-n", tierNS, "get", "triggerauthentications", "-o", "jsonpath={.items[*].metadata.name}"))
	if strings.Contains(so, " ") || so == "" || ta != so {
		t.Fatalf("ScaledObjects %q and TriggerAuthentications %q, want one of each, of the aggregators", so, ta)
	}
	eventually(t, 2*time.Minute, "KEDA finding the ScaledObject Ready (its scaler connected with the TriggerAuthentication)", func() error {
		c := kubectl(t, "-n", tierNS, "get", "scaledobject", so, "-o", `jsonpath={range .status.conditions[*]}{.type}={.status} {.reason}: {.message}{"\n"}{end}`)
		if !strings.Contains(c, "Ready=True") {
			return fmt.Errorf("conditions:\n%s", c)
		}
		return nil
	})
	hpa := tierHPA(t, "ScaledObject")
	h, _ := hpaReading(t, hpa, "", 1) // KEDA names its metric
	// The value comes from KEDA's metrics server, which asks the operator's
	// Kafka scaler. The group's lag in Kafka (the test reads it itself) is
	// soon far past what three aggregators may take, so KEDA serves its
	// cap: the partitions times lagThreshold (allowIdleConsumers false,
	// the chart's "never past the partitions").
	m := h.Spec.Metrics[0].External.Metric
	sel, err := metav1.LabelSelectorAsSelector(m.Selector)
	if err != nil {
		t.Fatal(err)
	}
	path := "/apis/external.metrics.k8s.io/v1beta1/namespaces/" + tierNS + "/" + m.Name + "?labelSelector=" + url.QueryEscape(sel.String())
	want := int64(tierMaxAggs * tierLagPer)
	eventually(t, time.Minute, "KEDA's external metric at its cap, the partitions times lagThreshold", func() error {
		var l struct {
			Items []struct {
				MetricName string            `json:"metricName"`
				Value      resource.Quantity `json:"value"`
			} `json:"items"`
		}
		raw := kubectl(t, "get", "--raw", path)
		if err := json.Unmarshal([]byte(raw), &l); err != nil {
			return fmt.Errorf("%v: %s", err, raw)
		}
		lag := groupLag(t, client, group, tierTopic)
		if len(l.Items) != 1 || l.Items[0].MetricName != m.Name || l.Items[0].Value.Value() != want || lag <= want {
			return fmt.Errorf("KEDA serves %s; the group's lag in Kafka is %d", raw, lag)
		}
		t.Logf("HPA %s (KEDA's): %s; KEDA serves %s = %s, the group's lag in Kafka being %d", hpa, hpaMetric(h), m.Name, &l.Items[0].Value, lag)
		return nil
	})

	tierScalesOut(t, hpa)
}

// startTier installs the tier release on k's Kafka and feeds it a stream:
// one aggregator and one merge-mode fan-out become Ready, and the fan-out
// serves the stream's events merged from the aggregators' partials.
func startTier(t *testing.T, k tierKafka) {
	t.Helper()
	removeRelease(t, tierNS, tierRelease)
	// The topics go too: the chart test's fan-out serves every playback-*
	// topic and would count this stream's history.
	t.Cleanup(func() {
		removeRelease(t, tierNS, tierRelease)
		deleteTopics(t, k.client, tierTopic, "tier-aggregates", "tier-tail", "tier-tail-filters", "tier-rollups")
	})
	kubectl(t, "create", "namespace", tierNS)
	for name, dir := range k.secrets {
		createSecretFromDir(t, tierNS, name, dir)
	}

	t0 := time.Now()
	notes := helm(t, append([]string{"install", tierRelease, filepath.Join(bed.root, "charts", "playpulse"),
		"--namespace", tierNS}, tierValues(k)...)...)
	createNotedTopics(t, k.client, k.bootstrap, notes, 4) // aggregates, tail, tail filters, rollups
	stream := fmt.Sprintf(`apiVersion: playpulse.dev/v1alpha1
kind: PlaybackStream
metadata:
  name: tier
spec:
  eventsPerSecond: %d
  replicas: 1
  topic:
    partitions: %d
`, tierRate, tierMaxAggs)
	if k.stream != "" {
		stream += "  kafka:\n" + k.stream + "\n"
	}
	applyIn(t, tierNS, stream)
	waitTopic(t, k.client, tierTopic, tierMaxAggs, 30*time.Second)
	// At least one: the scaler may already be adding more (KEDA did, on a
	// busy machine, before the first was Ready).
	aggs := someReadyPods(t, tierNS, tierAggSel, 90*time.Second)
	fans := readyPods(t, tierNS, tierFanSel, 1, 90*time.Second-time.Since(t0))
	t.Logf("aggregator %s and merge-mode fan-out %s ready %v after helm install", aggs[0].Name, fans[0].Name, time.Since(t0).Round(100*time.Millisecond))
	for _, p := range aggs {
		checkContainer(t, p, p.Status.ContainerStatuses[0], bed.images["fanout"].ref)
	}

	// The merge-mode fan-out serves figures it merged from the aggregators'
	// partials: the stream's events, counted.
	snap := fmt.Sprintf("http://%s:%d/api/snapshot", fans[0].Status.PodIP, tierFanPort)
	eventually(t, 90*time.Second, "events counted on the merge-mode fan-out's /api/snapshot", func() error {
		var s struct {
			EventsTotal uint64   `json:"events_total"`
			Streams     []string `json:"streams"`
		}
		if err := harness.GetJSON(snap, &s); err != nil {
			return err
		}
		if s.EventsTotal == 0 || !slices.Contains(s.Streams, "tier") {
			return fmt.Errorf("events_total %d, streams %v", s.EventsTotal, s.Streams)
		}
		t.Logf("merge-mode fan-out: %d events of streams %v", s.EventsTotal, s.Streams)
		return nil
	})
}

// tierScalesOut waits for the lag to take the aggregators from one to
// three, each running and ready, the HPA saying why, and each owning one of
// the stream's partitions.
func tierScalesOut(t *testing.T, hpa string) {
	t.Helper()
	t1 := time.Now()
	aggs := readyPods(t, tierNS, tierAggSel, tierMaxAggs, tierWaitLong)
	h, err := bed.kube.AutoscalingV2().HorizontalPodAutoscalers(tierNS).Get(context.Background(), hpa, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("HPA scaled the aggregators 1 → %d in %v: %s; conditions %s", len(aggs), time.Since(t1).Round(time.Second), hpaMetric(h), hpaConditions(h))
	if h.Status.DesiredReplicas != tierMaxAggs {
		t.Errorf("HPA desires %d replicas, want %d", h.Status.DesiredReplicas, tierMaxAggs)
	}
	if h.Status.LastScaleTime == nil {
		t.Errorf("the HPA never scaled (no lastScaleTime)")
	}
	// Each of the three owns a partition: the rebalance spread them.
	eventually(t, 2*time.Minute, "each aggregator exporting the lag of one partition", func() error {
		got := promQuery(t, `count by (pod) (playpulse_aggregator_lag{namespace="`+tierNS+`"})`)
		if n := strings.Count(got, `"pod"`); n != tierMaxAggs {
			return fmt.Errorf("partitions per pod: %s", got)
		}
		return nil
	})
	checkLogsIn(t, tierNS, aggs)
}

// tierValues: the chart's defaults, k's Kafka, the bed's images, the tier
// on with its own names, one fan-out, and aggregators that cannot keep up.
func tierValues(k tierKafka) []string {
	return append(append(append([]string{}, k.values...), imageValues()...),
		"--set", "fanout.replicas=1",
		"--set", "fanout.topicPattern="+tierTopic,
		"--set", "aggregation.enabled=true",
		"--set", "aggregation.group="+k.group,
		"--set", "aggregation.topic.name=tier-aggregates",
		"--set", "aggregation.topic.partitions=1",
		"--set", "aggregation.tail.topic=tier-tail",
		"--set", "aggregation.tail.filtersTopic=tier-tail-filters",
		"--set", "aggregation.tail.partitions=1",
		"--set", "aggregation.rollups.topic=tier-rollups",
		"--set", "aggregation.replay=1m",
		"--set", "aggregation.autoscaling.minReplicas=1",
		"--set", "aggregation.autoscaling.maxReplicas="+strconv.Itoa(tierMaxAggs),
		"--set", "aggregation.autoscaling.lagThreshold="+strconv.Itoa(tierLagPer),
		"--set", "aggregation.resources.requests.cpu="+tierAggCPU,
		"--set", "aggregation.resources.limits.cpu="+tierAggCPU,
	)
}

// createNotedTopics creates the topics the install notes tell a user
// without Strimzi to create, with the notes' partitions and configs,
// through the Kafka admin API; want is how many the notes must name, each
// with bootstrap as its --bootstrap-server.
func createNotedTopics(t *testing.T, c sarama.Client, bootstrap, notes string, want int) {
	t.Helper()
	cmds := notedTopic.FindAllStringSubmatch(notes, -1)
	if len(cmds) != want {
		t.Fatalf("the install notes give %d kafka-topics.sh commands, want %d:\n%s", len(cmds), want, notes)
	}
	admin, err := sarama.NewClusterAdminFromClient(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range cmds {
		if m[1] != bootstrap {
			t.Errorf("the notes name the bootstrap server %s; the release uses %s", m[1], bootstrap)
		}
		parts, _ := strconv.Atoi(m[3])
		detail := &sarama.TopicDetail{NumPartitions: int32(parts), ReplicationFactor: -1, ConfigEntries: map[string]*string{}}
		for _, kv := range strings.Fields(strings.ReplaceAll(m[4], "--config ", "")) {
			k, v, _ := strings.Cut(kv, "=")
			detail.ConfigEntries[k] = &v
		}
		if err := admin.CreateTopic(m[2], detail, false); err != nil && !strings.Contains(err.Error(), "already exists") {
			t.Fatalf("creating %s as the notes say: %v", m[2], err)
		}
		t.Logf("created %s with %d partitions (%s), as the notes say", m[2], parts, strings.TrimSpace(m[4]))
	}
}

// deleteTopics deletes topics that may exist and waits until they are gone.
func deleteTopics(t *testing.T, c sarama.Client, names ...string) {
	t.Helper()
	admin, err := sarama.NewClusterAdminFromClient(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := admin.DeleteTopic(n); err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			t.Errorf("deleting topic %s: %v", n, err)
		}
	}
	for _, n := range names {
		waitNoTopic(t, c, n, 30*time.Second)
	}
}

// tierHPA is the name of the release's only HPA: the chart's own (owner
// "") or the one a ScaledObject made KEDA create (owner "ScaledObject").
func tierHPA(t *testing.T, owner string) string {
	t.Helper()
	l, err := bed.kube.AutoscalingV2().HorizontalPodAutoscalers(tierNS).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Items) != 1 {
		t.Fatalf("%d HPAs in %s, want the aggregators' one", len(l.Items), tierNS)
	}
	h := l.Items[0]
	var owners []string
	for _, o := range h.OwnerReferences {
		owners = append(owners, o.Kind)
	}
	if strings.Join(owners, ",") != owner {
		t.Fatalf("HPA %s is owned by %v, want %q", h.Name, owners, owner)
	}
	if ref := h.Spec.ScaleTargetRef; ref.Kind != "Deployment" || !strings.HasSuffix(ref.Name, "aggregator") {
		t.Fatalf("the HPA scales %s %s, want the aggregators", ref.Kind, ref.Name)
	}
	return h.Name
}

// hpaReading waits until HPA hpa is ScalingActive with a current value of
// at least min per replica of its External metric name (any name when
// ""), and returns the HPA and that value.
func hpaReading(t *testing.T, hpa, name string, min int64) (*autoscalingv2.HorizontalPodAutoscaler, int64) {
	t.Helper()
	var h *autoscalingv2.HorizontalPodAutoscaler
	var v int64
	eventually(t, 2*time.Minute, "HPA "+hpa+" reading the lag (ScalingActive)", func() error {
		var err error
		if h, err = bed.kube.AutoscalingV2().HorizontalPodAutoscalers(tierNS).Get(context.Background(), hpa, metav1.GetOptions{}); err != nil {
			return err
		}
		if !hpaCondition(h, autoscalingv2.ScalingActive) {
			return fmt.Errorf("conditions %s", hpaConditions(h))
		}
		for _, m := range h.Status.CurrentMetrics {
			if m.External != nil && (name == "" || m.External.Metric.Name == name) && m.External.Current.AverageValue != nil {
				if v = m.External.Current.AverageValue.Value(); v >= min {
					return nil
				}
			}
		}
		return fmt.Errorf("no current value of %q of at least %d: %+v", name, min, h.Status.CurrentMetrics)
	})
	return h, v
}

func hpaCondition(h *autoscalingv2.HorizontalPodAutoscaler, c autoscalingv2.HorizontalPodAutoscalerConditionType) bool {
	for _, x := range h.Status.Conditions {
		if x.Type == c {
			return x.Status == corev1.ConditionTrue
		}
	}
	return false
}

func hpaConditions(h *autoscalingv2.HorizontalPodAutoscaler) string {
	var b strings.Builder
	for _, x := range h.Status.Conditions {
		fmt.Fprintf(&b, "[%s=%s %s: %s] ", x.Type, x.Status, x.Reason, x.Message)
	}
	return b.String()
}

func hpaMetric(h *autoscalingv2.HorizontalPodAutoscaler) string {
	for _, m := range h.Status.CurrentMetrics {
		if m.External != nil && m.External.Current.AverageValue != nil {
			return fmt.Sprintf("%s %s per replica (target %d)", m.External.Metric.Name, m.External.Current.AverageValue, tierLagPer)
		}
	}
	return "no current metric"
}

// promQuery runs an instant query on the bed's Prometheus and returns the
// result vector as JSON.
func promQuery(t *testing.T, q string) string {
	t.Helper()
	resp, err := http.Get(bed.env["PROMETHEUS_URL"] + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(readAll(t, resp)), &r); err != nil || r.Status != "success" {
		t.Fatalf("Prometheus query %s: %v %s", q, err, r.Data)
	}
	return string(r.Data)
}

// TestAdapterRuleIsTheDocumented: the bed's prometheus-adapter runs
// docs/operations.md's rule, so the rule users copy is the one tested.
func TestAdapterRuleIsTheDocumented(t *testing.T) {
	root, err := harness.Root()
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)  ```yaml\n(  rules:\n    external:\n.*?)  ```").FindSubmatch(doc)
	if block == nil {
		t.Fatal("docs/operations.md has no prometheus-adapter rules block")
	}
	var documented struct {
		Rules struct {
			External []map[string]any `json:"external"`
		} `json:"rules"`
	}
	if err := yaml.Unmarshal(block[1], &documented); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(filepath.Join(root, "hack", "cluster", "adapter", "rules.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var bedRules struct {
		ExternalRules []map[string]any `json:"externalRules"`
	}
	if err := yaml.Unmarshal(file, &bedRules); err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(documented.Rules.External)
	b, _ := json.Marshal(bedRules.ExternalRules)
	if len(bedRules.ExternalRules) == 0 || string(a) != string(b) {
		t.Errorf("hack/cluster/adapter/rules.yaml's externalRules differ from docs/operations.md's:\n%s\n%s", b, a)
	}
}

// groupLag is a consumer group's lag on topic as Kafka has it: the end
// offsets less the group's committed ones, summed over the partitions.
func groupLag(t *testing.T, c sarama.Client, group, topic string) int64 {
	t.Helper()
	admin, err := sarama.NewClusterAdminFromClient(c)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := c.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := admin.ListConsumerGroupOffsets(group, map[string][]int32{topic: parts})
	if err != nil {
		t.Fatal(err)
	}
	var lag int64
	for _, p := range parts {
		end, err := c.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		if b := committed.GetBlock(topic, p); b != nil && b.Offset >= 0 {
			lag += end - b.Offset
		}
	}
	return lag
}
