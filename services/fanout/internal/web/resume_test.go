package web_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"playpulse.dev/services/fanout/internal/hub"
	"playpulse.dev/services/fanout/internal/web"
)

type anyMsg struct {
	Type string `json:"type"`
	Full bool   `json:"full"`
}

func readAny(t *testing.T, c *websocket.Conn) anyMsg {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var m anyMsg
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestFullSnapshotOnConnect(t *testing.T) {
	h := hub.New(hub.Options{TailRate: 100, FrameHz: 10, WriteTimeout: time.Second, Full: func() []byte { return []byte(`{"type":"snapshot","full":true}`) }})
	mux := http.NewServeMux()
	web.Mount(mux, h, web.Options{MaxConnections: 10})
	srv := newServer(t, mux, h)
	_ = h.SetSnapshot([]byte(`{"type":"snapshot","full":false}`))
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if m := readAny(t, c); m.Type != "hello" {
		t.Fatal(m)
	}
	if m := readAny(t, c); m.Type != "snapshot" || !m.Full {
		t.Fatalf("second message %+v, want the full snapshot", m)
	}
	resp, err := http.Get(srv + "/api/snapshot?full=1")
	if err != nil {
		t.Fatal(err)
	}
	var m anyMsg
	_ = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if !m.Full {
		t.Fatal("/api/snapshot?full=1 is not the full snapshot")
	}
}

func TestAuthToken(t *testing.T) {
	f := newFixture(t, web.Options{AuthToken: "s3cret"}, hub.Options{})
	for _, tc := range []struct {
		path, header string
		want         int
	}{
		{"/api/snapshot", "", 401},
		{"/api/snapshot", "Bearer nope", 401},
		{"/api/snapshot", "Bearer s3cret", 200},
		{"/api/snapshot?access_token=s3cret", "", 200},
		{"/api/streams", "", 401},
		{"/", "", 200},
	} {
		req, _ := http.NewRequest("GET", f.srv.URL+tc.path, nil)
		if tc.header != "" {
			req.Header.Set("Authorization", tc.header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s %q: %d, want %d", tc.path, tc.header, resp.StatusCode, tc.want)
		}
	}
	ws := "ws" + strings.TrimPrefix(f.srv.URL, "http") + "/ws"
	if _, resp, err := websocket.DefaultDialer.Dial(ws, nil); err == nil || resp.StatusCode != 401 {
		t.Fatalf("ws without token: %v", err)
	}
	c, _, err := websocket.DefaultDialer.Dial(ws+"?access_token=s3cret", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestPerIPLimit(t *testing.T) {
	f := newFixture(t, web.Options{MaxConnectionsPerIP: 2}, hub.Options{})
	for i := 0; i < 2; i++ {
		c, _, err := f.dial(t, "")
		if err != nil {
			t.Fatal(err)
		}
		next(t, c, "hello")
	}
	_, resp, err := f.dial(t, "")
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third connection from one address: %v, want 503", err)
	}
}
