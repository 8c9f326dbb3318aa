package playertest

import (
	"embed"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test pages, one per player, and the measurement script they share.
//
//go:embed web
var webFS embed.FS

// Server serves the stream, the players and the test pages on 127.0.0.1, and
// lets the test change how media segments are answered while a player plays:
// see Inject, Throttle, Hold and Break. Every response carries
// Cache-Control: no-store so that no session is served from Chromium's cache.
//
//	/hlsjs.html, /shaka.html, /page.js, …   the test pages (tests/playertest/web)
//	/players/hls.js/dist/…                   hls.js from the npm package
//	/players/shaka-player/dist/…             Shaka Player from the npm package
//	/media/master.m3u8, /media/<rendition>/… the stream
type Server struct {
	URL   string // http://127.0.0.1:port
	media *Media
	srv   *httptest.Server

	mu       sync.Mutex
	faults   []*Fault
	requests []Request
	nextSeg  int // one past the index of the latest media segment request
	files    map[string][]byte
}

// Request is one request the server answered.
type Request struct {
	At        time.Time // when it arrived
	Path      string
	Rendition string // "" for the master playlist and everything else
	Segment   int    // the media segment's index, -1 for playlists and init segments
	Status    int
	Bytes     int
	Took      time.Duration // until the last byte was written
	Faults    string        // what was done to it ("stall 3s", "kbps 800", "status 404", "corrupt")
}

// Match selects media segments.
type Match struct {
	Rendition string // "" matches every rendition
	From      int    // the first segment index matched
	Until     int    // one past the last index matched; 0 matches to the end
}

func (m Match) matches(rendition string, seg int) bool {
	return seg >= 0 && (m.Rendition == "" || m.Rendition == rendition) && seg >= m.From && (m.Until == 0 || seg < m.Until)
}

// Fault changes the answers to the media segment requests it matches. Faults
// combine: a request matched by several waits for each hold and stall and is
// paced at the lowest rate; the first Status or Corrupt wins.
type Fault struct {
	Match
	Kbps    int           // pace the body at this rate, kbit/s (a slow link); 0 = full speed
	Stall   time.Duration // wait this long before answering
	Status  int           // answer this HTTP status with no media (404, 500, …)
	Corrupt bool          // answer 200 with the segment's media data scrambled (see corrupt)
	Times   int           // apply to the first Times matching requests only; 0 = to every one

	hold  chan struct{} // Hold: wait until closed
	used  int
	held  int
	label string
}

// NewServer starts a server for one player session (its counters and faults
// are its own) on addr and stops it when the test ends. addr "" is any free
// port of 127.0.0.1; the tests give the sessions one after another the same
// address, so that the page origin the collector allows (CORS) stays the same.
func NewServer(t testing.TB, addr string, m *Media, nodeModules string) *Server {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the media server: %v", err)
	}
	s := &Server{media: m, files: map[string][]byte{}}
	mux := http.NewServeMux()
	web, err := fs.Sub(webFS, "web")
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("GET /", noStore(http.FileServerFS(web)))
	// Only the players' dist directories, nothing else of node_modules.
	for _, pkg := range []string{"hls.js", "shaka-player"} {
		prefix := "/players/" + pkg + "/dist/"
		mux.Handle("GET "+prefix, noStore(http.StripPrefix(prefix, http.FileServer(http.Dir(filepath.Join(nodeModules, pkg, "dist"))))))
	}
	mux.HandleFunc("GET /media/", s.serveMedia)
	s.srv = httptest.NewUnstartedServer(mux)
	s.srv.Listener.Close()
	s.srv.Listener = ln
	s.srv.Start()
	s.URL = s.srv.URL
	t.Cleanup(func() {
		s.mu.Lock()
		for _, f := range s.faults {
			if f.hold != nil {
				close(f.hold)
				f.hold = nil
			}
		}
		s.mu.Unlock()
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
	return s
}

// MasterURL is the stream's master playlist.
func (s *Server) MasterURL() string { return s.URL + "/media/master.m3u8" }

func noStore(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

var segmentName = regexp.MustCompile(`^seg_(\d+)\.m4s$`)

func (s *Server) serveMedia(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	rel := strings.TrimPrefix(path.Clean(r.URL.Path), "/media/")
	rendition, name, _ := strings.Cut(rel, "/")
	if name == "" {
		rendition, name = "", rel
	}
	seg := -1
	if m := segmentName.FindStringSubmatch(name); m != nil {
		seg, _ = strconv.Atoi(m[1])
	}
	req := Request{At: arrived, Path: r.URL.Path, Rendition: rendition, Segment: seg}
	defer func() {
		req.Took = time.Since(arrived)
		s.mu.Lock()
		s.requests = append(s.requests, req)
		s.mu.Unlock()
	}()
	body, err := s.file(rel)
	if err != nil {
		req.Status = http.StatusNotFound
		http.NotFound(w, r)
		return
	}

	// The faults that apply, decided when the request arrives.
	var holds []chan struct{}
	var stall time.Duration
	kbps, status, corrupt := 0, 0, false
	var labels []string
	s.mu.Lock()
	if seg >= 0 {
		s.nextSeg = seg + 1
	}
	var heldBy []*Fault
	for _, f := range s.faults {
		if !f.matches(rendition, seg) || (f.Times > 0 && f.used >= f.Times) {
			continue
		}
		f.used++
		labels = append(labels, f.label)
		if f.hold != nil {
			holds = append(holds, f.hold)
			f.held++
			heldBy = append(heldBy, f)
		}
		stall += f.Stall
		if f.Kbps > 0 && (kbps == 0 || f.Kbps < kbps) {
			kbps = f.Kbps
		}
		if status == 0 && !corrupt {
			status, corrupt = f.Status, f.Corrupt
		}
	}
	s.mu.Unlock()
	req.Faults = strings.Join(labels, ", ")
	defer func() {
		s.mu.Lock()
		for _, f := range heldBy {
			f.held--
		}
		s.mu.Unlock()
	}()
	for _, h := range holds {
		select {
		case <-h:
		case <-r.Context().Done():
			req.Status = 499 // the player gave up waiting
			return
		}
	}
	if stall > 0 {
		select {
		case <-time.After(stall):
		case <-r.Context().Done():
			req.Status = 499
			return
		}
	}
	if status != 0 {
		req.Status = status
		http.Error(w, http.StatusText(status), status)
		return
	}
	if corrupt {
		body = corruptSegment(body)
	}
	switch path.Ext(name) {
	case ".m3u8":
		w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
	case ".mp4", ".m4s":
		w.Header().Set("Content-Type", "video/mp4")
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	req.Status = http.StatusOK
	if kbps == 0 {
		n, _ := w.Write(body)
		req.Bytes = n
		return
	}
	// Pace the body: by time d since the first byte at most kbps*d is sent,
	// in 4 KiB writes, each flushed so the player sees the bytes arrive.
	flusher, _ := w.(http.Flusher)
	bytesPerSec := float64(kbps) * 1000 / 8
	start := time.Now()
	for off := 0; off < len(body); {
		end := min(off+4096, len(body))
		if due := start.Add(time.Duration(float64(end) / bytesPerSec * float64(time.Second))); time.Until(due) > 0 {
			select {
			case <-time.After(time.Until(due)):
			case <-r.Context().Done():
				req.Status = 499
				return
			}
		}
		n, err := w.Write(body[off:end])
		req.Bytes += n
		if err != nil {
			return
		}
		if flusher != nil {
			flusher.Flush()
		}
		off = end
	}
}

// file returns a file of the stream, read once.
func (s *Server) file(rel string) ([]byte, error) {
	s.mu.Lock()
	b, ok := s.files[rel]
	s.mu.Unlock()
	if ok {
		return b, nil
	}
	if !fs.ValidPath(rel) {
		return nil, fs.ErrNotExist
	}
	b, err := os.ReadFile(filepath.Join(s.media.Dir, filepath.FromSlash(rel)))
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.files[rel] = b
	s.mu.Unlock()
	return b, nil
}

// corruptSegment keeps the segment's boxes (styp, moof, mdat headers) and
// scrambles the media data inside mdat: the player parses the segment and
// appends it, and the browser's decoder fails on it.
func corruptSegment(b []byte) []byte {
	out := append([]byte(nil), b...)
	for off := 0; off+8 <= len(out); {
		size := int(out[off])<<24 | int(out[off+1])<<16 | int(out[off+2])<<8 | int(out[off+3])
		if size < 8 || off+size > len(out) {
			break
		}
		if string(out[off+4:off+8]) == "mdat" {
			x := uint32(2463534242)
			for i := off + 8; i < off+size; i++ {
				x ^= x << 13
				x ^= x >> 17
				x ^= x << 5
				out[i] = byte(x)
			}
		}
		off += size
	}
	return out
}

// Inject adds a fault; remove takes it out again (requests already waiting
// on it go on).
func (s *Server) Inject(f Fault) (remove func()) {
	fp := &f
	if fp.label == "" {
		fp.label = f.describe()
	}
	s.mu.Lock()
	s.faults = append(s.faults, fp)
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, g := range s.faults {
			if g == fp {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
				break
			}
		}
		if fp.hold != nil {
			close(fp.hold)
			fp.hold = nil
		}
	}
}

func (f Fault) describe() string {
	var parts []string
	if f.Kbps > 0 {
		parts = append(parts, fmt.Sprintf("kbps %d", f.Kbps))
	}
	if f.Stall > 0 {
		parts = append(parts, "stall "+f.Stall.String())
	}
	if f.Status != 0 {
		parts = append(parts, fmt.Sprintf("status %d", f.Status))
	}
	if f.Corrupt {
		parts = append(parts, "corrupt")
	}
	return strings.Join(parts, " ")
}

// Throttle paces every media segment at kbps (the link got slow) until undo.
func (s *Server) Throttle(kbps int) (undo func()) {
	return s.Inject(Fault{Kbps: kbps})
}

// Hold makes the matched segment requests wait, without answering, until
// Release: the player runs out of buffer and stalls for as long as the test
// holds.
type Hold struct {
	s      *Server
	f      *Fault
	remove func()
	once   sync.Once
}

// Hold starts holding the segments m matches.
func (s *Server) Hold(m Match) *Hold {
	f := Fault{Match: m, hold: make(chan struct{}), label: "hold"}
	h := &Hold{s: s}
	h.remove = s.Inject(f)
	s.mu.Lock()
	h.f = s.faults[len(s.faults)-1]
	s.mu.Unlock()
	return h
}

// Waiting is the number of requests waiting on the hold now.
func (h *Hold) Waiting() int {
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return h.f.held
}

// Release answers the held requests and stops holding.
func (h *Hold) Release() { h.once.Do(h.remove) }

// ReleaseAfter releases the hold d from now, and returns when it did.
func (h *Hold) ReleaseAfter(d time.Duration) time.Time {
	time.Sleep(d) // the stall's length is the stimulus itself, not a wait for a condition
	h.Release()
	return time.Now()
}

// Breakage is a way a segment can be broken.
type Breakage int

const (
	// Corrupt answers 200 with the media data scrambled.
	Corrupt Breakage = iota
	// NotFound answers 404 to every attempt.
	NotFound
	// ServerError answers 500 to every attempt.
	ServerError
)

// Break breaks the segments m matches, for every request, until undo.
func (s *Server) Break(m Match, b Breakage) (undo func()) {
	f := Fault{Match: m}
	switch b {
	case Corrupt:
		f.Corrupt = true
	case NotFound:
		f.Status = http.StatusNotFound
	case ServerError:
		f.Status = http.StatusInternalServerError
	}
	return s.Inject(f)
}

// Requests returns what was requested so far, in order of completion.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Log is the last n requests, one a line, for failure messages.
func (s *Server) Log(n int) string {
	rs := s.Requests()
	var b strings.Builder
	for _, r := range rs[max(0, len(rs)-n):] {
		fmt.Fprintf(&b, "  %s %s %d %d B in %s %s\n", r.At.Format("15:04:05.000"), r.Path, r.Status, r.Bytes, r.Took.Round(time.Millisecond), r.Faults)
	}
	return b.String()
}

// Segments returns the media segment requests so far, in order of completion.
func (s *Server) Segments() []Request {
	var out []Request
	for _, r := range s.Requests() {
		if r.Segment >= 0 {
			out = append(out, r)
		}
	}
	return out
}

// Count is the number of requests for the segments m matches.
func (s *Server) Count(m Match) int {
	n := 0
	for _, r := range s.Requests() {
		if m.matches(r.Rendition, r.Segment) {
			n++
		}
	}
	return n
}

// NextSegment is one past the index of the latest media segment request to
// arrive: where the player's sequential fetching is. Holding or breaking from
// it catches the next segment the player needs once its buffer drains. (Not
// the highest index requested: Shaka probes the first, middle and last
// segments of the playlist at load.)
func (s *Server) NextSegment() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextSeg
}

// LastRendition is the rendition of the latest media segment answered with 200.
func (s *Server) LastRendition() string {
	rs := s.Requests()
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].Segment >= 0 && rs[i].Status == http.StatusOK {
			return rs[i].Rendition
		}
	}
	return ""
}
