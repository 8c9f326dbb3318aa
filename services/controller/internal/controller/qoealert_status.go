package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"playpulse.dev/services/controller/api/v1alpha1"
)

// +kubebuilder:rbac:groups=playpulse.dev,resources=qoealerts/status,verbs=get;update;patch

// MaxFiringStreams is the most streams status.firing lists.
const MaxFiringStreams = 20

// maxAlertsBytes bounds the /api/alerts answer read: thousands of alerts.
const maxAlertsBytes = 8 << 20

// overallStream is how status.firing names the alert of an overall rule
// (the fan-out reports it with an empty stream).
const overallStream = "(all streams)"

// fanoutAlert is the part of one alert of the fan-out's /api/alerts
// (services/fanout/internal/alert Alert) the status uses.
type fanoutAlert struct {
	Rule    string `json:"rule"`
	Stream  string `json:"stream"`
	State   string `json:"state"` // pending or firing
	Message string `json:"message"`
}

// AlertStatusPoller writes the QoEAlerts' status from a fan-out's
// /api/alerts every interval. Every fan-out replica consumes every
// partition of every topic and evaluates the same rules file, so any one
// of them, as the Service picks it, is representative: asking one per
// interval is enough, and no replica has alerts the others lack (apart
// from the seconds a new replica spends replaying its window).
//
// It runs on the leader only (the manager's default for a Runnable), as
// the status writes must come from one writer.
type AlertStatusPoller struct {
	client    client.Client
	http      *http.Client
	url       string // .../api/alerts
	token     string
	namespace string // the fan-out's: only its QoEAlerts are in its rules
	every     time.Duration
	clock     clock.WithTicker
	log       logr.Logger
}

// NewAlertStatusPoller returns a poller of the fan-out at baseURL (its
// Service), whose rules are the QoEAlerts of namespace.
func NewAlertStatusPoller(c client.Client, baseURL, token, namespace string, every time.Duration, clk clock.WithTicker, log logr.Logger) *AlertStatusPoller {
	timeout := min(every, 5*time.Second)
	return &AlertStatusPoller{
		client: c, http: &http.Client{Timeout: timeout},
		url:   strings.TrimRight(baseURL, "/") + "/api/alerts",
		token: token, namespace: namespace, every: every, clock: clk, log: log,
	}
}

// Start polls until ctx ends (manager.Runnable).
func (p *AlertStatusPoller) Start(ctx context.Context) error {
	t := p.clock.NewTicker(p.every)
	defer t.Stop()
	for {
		if err := p.Poll(ctx); err != nil && ctx.Err() == nil {
			p.log.Error(err, "QoEAlert status not written")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C():
		}
	}
}

// Poll asks the fan-out once and writes the status of every QoEAlert of
// its namespace whose status changed.
func (p *AlertStatusPoller) Poll(ctx context.Context) error {
	var list v1alpha1.QoEAlertList
	if err := p.client.List(ctx, &list, client.InNamespace(p.namespace)); err != nil {
		return err
	}
	if len(list.Items) == 0 {
		return nil // nobody to tell: do not load the fan-out
	}
	active, fetchErr := p.fetch(ctx)
	if fetchErr != nil && ctx.Err() != nil {
		return nil // stopping, not a fan-out failure to report
	}
	now := p.clock.Now()
	var errs []error
	for i := range list.Items {
		a := &list.Items[i]
		st := alertStatus(a, active, fetchErr, now)
		if equality.Semantic.DeepEqual(a.Status, st) {
			continue
		}
		patch := client.MergeFrom(a.DeepCopy())
		a.Status = st
		if err := p.client.Status().Patch(ctx, a, patch); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("QoEAlert %s/%s: %w", a.Namespace, a.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (p *AlertStatusPoller) fetch(ctx context.Context) ([]fanoutAlert, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url, nil)
	if err != nil {
		return nil, err
	}
	if p.token != "" {
		req.Header.Set("Authorization", "Bearer "+p.token)
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		return nil, fmt.Errorf("GET %s: HTTP %d: %s", p.url, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	var body struct {
		Alerts []fanoutAlert `json:"alerts"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAlertsBytes)).Decode(&body); err != nil {
		return nil, fmt.Errorf("GET %s: %w", p.url, err)
	}
	return body.Alerts, nil
}

// alertStatus is the status of QoEAlert a given the fan-out's active
// alerts (its rules are named after the QoEAlerts), or the error asking
// for them. Pure: the time comes in as now.
//
// ObservedGeneration is the generation rendered into the ConfigMap the
// fan-outs are given: /api/alerts does not say which rules file a fan-out
// runs, and the kubelet takes up to a minute to update the mounted file.
func alertStatus(a *v1alpha1.QoEAlert, active []fanoutAlert, fetchErr error, now time.Time) v1alpha1.QoEAlertStatus {
	st := v1alpha1.QoEAlertStatus{State: v1alpha1.AlertInactive, ObservedGeneration: a.Generation}
	if fetchErr != nil {
		st.State = v1alpha1.AlertUnknown
		st.Message = "no answer from the fan-out: " + fetchErr.Error()
	} else {
		var firing, pending []fanoutAlert
		for _, x := range active {
			switch {
			case x.Rule != a.Name:
			case x.State == "firing":
				firing = append(firing, x)
			case x.State == "pending":
				pending = append(pending, x)
			}
		}
		byStream := func(x, y fanoutAlert) int { return strings.Compare(x.Stream, y.Stream) }
		slices.SortFunc(firing, byStream)
		slices.SortFunc(pending, byStream)
		switch {
		case len(firing) > 0:
			st.State, st.Message = v1alpha1.AlertFiring, firing[0].Message
			for _, x := range firing[:min(len(firing), MaxFiringStreams)] {
				s := x.Stream
				if s == "" {
					s = overallStream
				}
				st.Firing = append(st.Firing, s)
			}
		case len(pending) > 0:
			st.State, st.Message = v1alpha1.AlertPending, pending[0].Message
		}
	}
	st.LastTransitionTime = a.Status.LastTransitionTime
	if a.Status.State != st.State || st.LastTransitionTime == nil {
		t := metav1.NewTime(now).Rfc3339Copy() // what the API server keeps
		st.LastTransitionTime = &t
	}
	return st
}
