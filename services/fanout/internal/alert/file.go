package alert

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"sigs.k8s.io/yaml"
)

// MaxFileBytes bounds a rules file: far more than any set of rules needs.
const MaxFileBytes = 1 << 20

// File is a rules file (FANOUT_ALERT_RULES), YAML or JSON; docs/alerts.md
// describes it. The controller writes the same format from the QoEAlert
// resources; tests/controller checks that the two agree.
type File struct {
	Rules []Spec `json:"rules"`
}

// Spec is one rule as written in a file: Rule's fields with durations as
// strings ("90s", "10m") and the direction as a word.
type Spec struct {
	Name         string  `json:"name"`
	Metric       Metric  `json:"metric"`
	Stream       string  `json:"stream,omitempty"`    // default "*": each stream separately
	Overall      bool    `json:"overall,omitempty"`   // every stream together (not with stream)
	Condition    string  `json:"condition"`           // "above" or "below"
	Threshold    float64 `json:"threshold"`           // a factor of the baseline when baseline is set
	Baseline     string  `json:"baseline,omitempty"`  // compare with the figure this long before
	Window       string  `json:"window,omitempty"`    // default 1m
	MinSample    float64 `json:"minSample,omitempty"` // default 0
	For          string  `json:"for,omitempty"`       // default 0s
	ResolveAfter string  `json:"resolveAfter,omitempty"`
	Severity     string  `json:"severity,omitempty"` // default warning
	Explain      []Dim   `json:"explain,omitempty"`  // default cdn, device, country
}

// Rule converts a spec, naming the field that is wrong.
func (s Spec) Rule() (Rule, error) {
	r := Rule{Name: s.Name, Metric: s.Metric, Stream: s.Stream, Threshold: s.Threshold, MinSample: s.MinSample, Severity: s.Severity, Explain: s.Explain}
	var errs []error
	switch {
	case s.Overall && s.Stream != "":
		errs = append(errs, fmt.Errorf("stream: %q with overall: set one or the other", s.Stream))
	case s.Overall:
		r.Stream = ""
	case s.Stream == "":
		r.Stream = "*"
	}
	switch s.Condition {
	case "above":
		r.Above = true
	case "below":
	default:
		errs = append(errs, fmt.Errorf("condition: %q is neither above nor below", s.Condition))
	}
	for _, d := range []struct {
		name string
		in   string
		out  *time.Duration
	}{{"baseline", s.Baseline, &r.Baseline}, {"window", s.Window, &r.Window}, {"for", s.For, &r.For}, {"resolveAfter", s.ResolveAfter, &r.ResolveAfter}} {
		if d.in == "" {
			continue
		}
		v, err := time.ParseDuration(d.in)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not a duration (90s, 10m)", d.name, d.in))
		}
		*d.out = v
	}
	if err := errors.Join(errs...); err != nil {
		return Rule{}, fmt.Errorf("rule %q: %w", s.Name, err)
	}
	return r, r.Validate()
}

// Parse reads a rules file's content: strict (an unknown field is an
// error, so a typo does not silently drop a guard), every rule valid,
// names unique.
func Parse(data []byte) ([]Rule, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(js))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	var rules []Rule
	var errs []error
	seen := map[string]bool{}
	for i, s := range f.Rules {
		r, err := s.Rule()
		if err != nil {
			errs = append(errs, fmt.Errorf("rules[%d]: %w", i, err))
			continue
		}
		if seen[r.Name] {
			errs = append(errs, fmt.Errorf("rules[%d]: name %q is used twice", i, r.Name))
		}
		seen[r.Name] = true
		rules = append(rules, r)
	}
	return rules, errors.Join(errs...)
}

// Load reads and parses a rules file of at most MaxFileBytes.
func Load(path string) ([]Rule, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileBytes {
		return nil, fmt.Errorf("%s: over %d bytes", path, MaxFileBytes)
	}
	return Parse(data)
}
