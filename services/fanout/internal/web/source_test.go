package web_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"

	"playpulse.dev/services/fanout/internal/hub"
	"playpulse.dev/services/fanout/internal/web"
)

// TestAPISourceParameter: /api/snapshot and /api/streams pass ?source= to
// the server's scopes and answer 400 with the reason when it refuses one.
func TestAPISourceParameter(t *testing.T) {
	refuse := errors.New("source must be one of sim, cmcd, beacon, unknown")
	f := newFixture(t, web.Options{
		Streams: func(source string) (any, error) {
			if source == "bogus" {
				return nil, refuse
			}
			return []string{"streams of " + source}, nil
		},
		SourceSnapshot: func(source string, full bool) ([]byte, error) {
			if source == "bogus" {
				return nil, refuse
			}
			b, _ := json.Marshal(map[string]any{"type": "snapshot", "scope": map[string]any{"source": source}, "full": full})
			return b, nil
		},
	}, hub.Options{})
	if err := f.hub.SetSnapshot([]byte(`{"type":"snapshot","events_total":7}`)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, want string
		status     int
	}{
		{"/api/snapshot", `{"type":"snapshot","events_total":7}`, 200},
		{"/api/snapshot?source=cmcd", `{"full":false,"scope":{"source":"cmcd"},"type":"snapshot"}`, 200},
		{"/api/snapshot?source=unknown&full=1", `{"full":true,"scope":{"source":"unknown"},"type":"snapshot"}`, 200},
		{"/api/snapshot?source=bogus", refuse.Error() + "\n", 400},
		{"/api/streams", `{"streams":["streams of "]}`, 200},
		{"/api/streams?source=beacon", `{"streams":["streams of beacon"]}`, 200},
		{"/api/streams?source=bogus", refuse.Error() + "\n", 400},
	} {
		resp, err := http.Get(f.srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || string(body) != tc.want {
			t.Errorf("%s: %d %s, want %d %s", tc.path, resp.StatusCode, body, tc.status, tc.want)
		}
	}
}
