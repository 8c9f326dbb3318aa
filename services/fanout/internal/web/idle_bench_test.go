package web_test

import (
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"playpulse.dev/services/fanout/internal/hub"
	"playpulse.dev/services/fanout/internal/web"
)

// BenchmarkIdleClients reports the server-side heap and goroutine stack
// per connected idle client (clients and server share the process, so the
// client side is measured alone first and subtracted).
func BenchmarkIdleClients(b *testing.B) {
	const n = 2000
	h := hub.New(hub.Options{TailRate: 200, FrameHz: 10, WriteTimeout: 10 * time.Second})
	_ = h.SetSnapshot([]byte(`{"type":"snapshot","full":false}`))
	mux := http.NewServeMux()
	web.Mount(mux, h, web.Options{MaxConnections: 100000})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer h.Close()
	url := "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
	mem := func() (heap, stack uint64) {
		runtime.GC()
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse, m.StackInuse
	}
	h0, s0 := mem()
	conns := make([]*websocket.Conn, 0, n)
	for i := 0; i < n; i++ {
		c, _, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			b.Fatal(err)
		}
		conns = append(conns, c)
		go func() {
			for {
				if _, _, err := c.ReadMessage(); err != nil {
					return
				}
			}
		}()
	}
	time.Sleep(2 * time.Second)
	h1, s1 := mem()
	b.ReportMetric(float64(h1-h0)/n, "heap-B/conn-both-sides")
	b.ReportMetric(float64(s1-s0)/n, "stack-B/conn-both-sides")
	if path := os.Getenv("IDLE_HEAP_PROFILE"); path != "" {
		f, _ := os.Create(path)
		_ = pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
	for _, c := range conns {
		c.Close()
	}
}
