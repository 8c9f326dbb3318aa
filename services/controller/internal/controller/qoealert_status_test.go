package controller

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"playpulse.dev/services/controller/api/v1alpha1"
)

func TestAlertStatus(t *testing.T) {
	earlier := metav1.NewTime(t0.Add(-time.Hour))
	now := metav1.NewTime(t0)
	firing := func(rule, stream, msg string) fanoutAlert {
		return fanoutAlert{Rule: rule, Stream: stream, State: "firing", Message: msg}
	}
	pending := func(rule, stream string) fanoutAlert {
		return fanoutAlert{Rule: rule, Stream: stream, State: "pending", Message: rule + " pending on " + stream}
	}
	var many []fanoutAlert
	var first20 []string
	for i := range 25 {
		s := fmt.Sprintf("s%02d", i)
		many = append(many, firing("r", s, "on "+s))
		if i < MaxFiringStreams {
			first20 = append(first20, s)
		}
	}
	for _, tt := range []struct {
		name     string
		old      v1alpha1.QoEAlertStatus
		active   []fanoutAlert
		fetchErr error
		want     v1alpha1.QoEAlertStatus
	}{
		{"first look, nothing active", v1alpha1.QoEAlertStatus{}, nil, nil,
			v1alpha1.QoEAlertStatus{State: v1alpha1.AlertInactive, LastTransitionTime: &now, ObservedGeneration: 3}},
		{"still inactive: the transition time stays", v1alpha1.QoEAlertStatus{State: v1alpha1.AlertInactive, LastTransitionTime: &earlier},
			[]fanoutAlert{firing("other-rule", "live", "x")}, nil,
			v1alpha1.QoEAlertStatus{State: v1alpha1.AlertInactive, LastTransitionTime: &earlier, ObservedGeneration: 3}},
		{"pending on one stream", v1alpha1.QoEAlertStatus{State: v1alpha1.AlertInactive, LastTransitionTime: &earlier},
			[]fanoutAlert{pending("r", "live")}, nil,
			v1alpha1.QoEAlertStatus{State: v1alpha1.AlertPending, LastTransitionTime: &now, Message: "r pending on live", ObservedGeneration: 3}},
		{"firing beats pending; streams sorted; first firing message", v1alpha1.QoEAlertStatus{State: v1alpha1.AlertPending, LastTransitionTime: &earlier},
			[]fanoutAlert{pending("r", "aaa"), firing("r", "zzz", "on zzz"), firing("r", "live", "on live")}, nil,
			v1alpha1.QoEAlertStatus{State: v1alpha1.AlertFiring, LastTransitionTime: &now, Firing: []string{"live", "zzz"}, Message: "on live", ObservedGeneration: 3}},
		{"still firing, other streams: the transition time stays", v1alpha1.QoEAlertStatus{State: v1alpha1.AlertFiring, LastTransitionTime: &earlier, Firing: []string{"live"}},
			[]fanoutAlert{firing("r", "vod", "on vod")}, nil,
			v1alpha1.QoEAlertStatus{State: v1alpha1.AlertFiring, LastTransitionTime: &earlier, Firing: []string{"vod"}, Message: "on vod", ObservedGeneration: 3}},
		{"an overall rule", v1alpha1.QoEAlertStatus{},
			[]fanoutAlert{firing("r", "", "everywhere")}, nil,
			v1alpha1.QoEAlertStatus{State: v1alpha1.AlertFiring, LastTransitionTime: &now, Firing: []string{overallStream}, Message: "everywhere", ObservedGeneration: 3}},
		{"at most 20 streams", v1alpha1.QoEAlertStatus{}, many, nil,
			v1alpha1.QoEAlertStatus{State: v1alpha1.AlertFiring, LastTransitionTime: &now, Firing: first20, Message: "on s00", ObservedGeneration: 3}},
		{"fan-out down: Unknown, saying why", v1alpha1.QoEAlertStatus{State: v1alpha1.AlertFiring, LastTransitionTime: &earlier, Firing: []string{"live"}, Message: "m"},
			nil, errors.New("connection refused"),
			v1alpha1.QoEAlertStatus{State: v1alpha1.AlertUnknown, LastTransitionTime: &now, Message: "no answer from the fan-out: connection refused", ObservedGeneration: 3}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := qoeAlert("ns", "r", nil)
			a.Generation, a.Status = 3, tt.old
			got := alertStatus(&a, tt.active, tt.fetchErr, t0.Add(300*time.Millisecond))
			if !equality.Semantic.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestAlertStatusPoller: the poller against an httptest fan-out, on an
// injected clock: the state of each QoEAlert of the fan-out's namespace,
// transition times that move only with the state, no write when nothing
// changed, the bearer token, and Unknown when the fan-out is down.
func TestAlertStatusPoller(t *testing.T) {
	ctx := context.Background()
	var body atomic.Value
	body.Store(`{"alerts":[]}`)
	var auth atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth.Store(r.Header.Get("Authorization"))
		if r.URL.Path != "/api/alerts" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprint(w, body.Load())
	}))
	defer srv.Close()

	a, b, elsewhere := qoeAlert("ns", "failures", nil), qoeAlert("ns", "startup", nil), qoeAlert("other", "failures", nil)
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(&a, &b, &elsewhere).WithStatusSubresource(&v1alpha1.QoEAlert{}).Build()
	clk := clocktesting.NewFakeClock(t0)
	p := NewAlertStatusPoller(c, srv.URL+"/", "tok", "ns", 10*time.Second, clk, logr.Discard())
	get := func(ns, name string) v1alpha1.QoEAlert {
		t.Helper()
		var x v1alpha1.QoEAlert
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &x); err != nil {
			t.Fatal(err)
		}
		return x
	}
	poll := func(after time.Duration) {
		t.Helper()
		clk.Step(after)
		if err := p.Poll(ctx); err != nil {
			t.Fatal(err)
		}
	}

	poll(0)
	if got := get("ns", "failures").Status; got.State != v1alpha1.AlertInactive || !got.LastTransitionTime.Time.Equal(t0) {
		t.Errorf("first poll: %+v", got)
	}
	if auth.Load() != "Bearer tok" {
		t.Errorf("Authorization %q", auth.Load())
	}
	if got := get("other", "failures").Status; got.State != "" {
		t.Errorf("a QoEAlert of another namespace got a status: %+v", got)
	}

	body.Store(`{"alerts":[{"rule":"failures","metric":"playback_failure_pct","stream":"live","severity":"warning","state":"firing",` +
		`"since":"2026-11-24T20:59:00Z","active_at":"2026-11-24T21:00:00Z","value":9.8,"threshold":5,` +
		`"explained":{"dim":"cdn","value":"fastly","share":0.82,"figure":31},"message":"playback failures 9.8% (threshold 5%) on live; cdn=fastly accounts for 82% of the failures"}]}`)
	poll(10 * time.Second)
	fired := get("ns", "failures")
	if st := fired.Status; st.State != v1alpha1.AlertFiring || !st.LastTransitionTime.Time.Equal(t0.Add(10*time.Second)) ||
		len(st.Firing) != 1 || st.Firing[0] != "live" || !strings.Contains(st.Message, "cdn=fastly") {
		t.Errorf("firing: %+v", st)
	}
	if st := get("ns", "startup").Status; st.State != v1alpha1.AlertInactive || !st.LastTransitionTime.Time.Equal(t0) {
		t.Errorf("the other rule: %+v", st)
	}

	poll(10 * time.Second)
	if again := get("ns", "failures"); again.ResourceVersion != fired.ResourceVersion {
		t.Errorf("status written again with nothing changed: resourceVersion %s -> %s", fired.ResourceVersion, again.ResourceVersion)
	}

	srv.Close()
	poll(10 * time.Second)
	for _, name := range []string{"failures", "startup"} {
		if st := get("ns", name).Status; st.State != v1alpha1.AlertUnknown || !st.LastTransitionTime.Time.Equal(t0.Add(30*time.Second)) ||
			!strings.HasPrefix(st.Message, "no answer from the fan-out: ") || st.Firing != nil {
			t.Errorf("%s with the fan-out down: %+v", name, st)
		}
	}
}
