package faults

import (
	"context"
	"fmt"
	"strings"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
)

// link is the proxies of one proxied listener, one per node: what a test
// does to a link happens to every connection its clients have to any
// broker.
type link struct {
	name    string
	proxies []*toxiproxy.Proxy
}

func newLink(name string, listen, upstreams []string) (*link, error) {
	if len(listen) != len(upstreams) {
		return nil, fmt.Errorf("link %s: %d addresses, %d upstreams", name, len(listen), len(upstreams))
	}
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	l := &link{name: name}
	for i := range listen {
		p := toxiproxy.NewProxy(srv, fmt.Sprintf("%s-%d", name, i+1), listen[i], upstreams[i])
		if err := p.Start(); err != nil {
			l.close()
			return nil, fmt.Errorf("proxy %s on %s: %w", p.Name, listen[i], err)
		}
		l.proxies = append(l.proxies, p)
	}
	return l, nil
}

// bootstrap is the link's bootstrap list (the proxies' addresses).
func (l *link) bootstrap() string {
	var out []string
	for _, p := range l.proxies {
		out = append(out, p.Listen)
	}
	return strings.Join(out, ",")
}

// add puts a toxic (toxiproxy's JSON: name, type, stream, attributes) on
// every proxy of the link.
func (l *link) add(t testing.TB, toxic string) {
	t.Helper()
	for _, p := range l.proxies {
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(toxic)); err != nil {
			t.Fatalf("link %s: toxic %s: %v", l.name, toxic, err)
		}
	}
}

// latency delays every chunk of data both ways by ms (± jitter ms).
func (l *link) latency(t testing.TB, ms, jitter int) {
	t.Helper()
	for _, dir := range []string{"upstream", "downstream"} {
		l.add(t, fmt.Sprintf(`{"name":"latency-%s","type":"latency","stream":%q,"attributes":{"latency":%d,"jitter":%d}}`, dir, dir, ms, jitter))
	}
}

// blackHole drops every byte both ways while the connections stay open, as
// a partition that nothing tells the ends about.
func (l *link) blackHole(t testing.TB) {
	t.Helper()
	for _, dir := range []string{"upstream", "downstream"} {
		l.add(t, fmt.Sprintf(`{"name":"blackhole-%s","type":"timeout","stream":%q,"attributes":{"timeout":0}}`, dir, dir))
	}
}

// heal removes every toxic.
func (l *link) heal() {
	for _, p := range l.proxies {
		p.Toxics.ResetToxics(context.Background())
	}
}

// cut closes every connection through the link at once (the proxies stop
// and start again): what a broker restart or a network reset does to the
// clients.
func (l *link) cut(t testing.TB) {
	t.Helper()
	for _, p := range l.proxies {
		p.Stop()
		if err := p.Start(); err != nil {
			t.Fatalf("link %s: restarting proxy %s: %v", l.name, p.Name, err)
		}
	}
}

func (l *link) close() {
	for _, p := range l.proxies {
		p.Stop()
	}
}
