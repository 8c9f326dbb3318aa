package playertest

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The stream every real-player test plays: synthetic H.264/AAC video in fMP4
// (CMAF) segments, which Debian's Chromium plays through Media Source
// Extensions with both hls.js and Shaka Player.
const (
	// SegmentSeconds is the length of every segment (a keyframe starts each).
	SegmentSeconds = 2
	// StreamSeconds is the length of the stream.
	StreamSeconds = 60
	// Segments is the number of media segments per rendition.
	Segments  = StreamSeconds / SegmentSeconds
	frameRate = 25
)

// Video bitrates of the renditions, kbit/s, lowest first. They are far enough
// apart that a throttled link (see Server.Throttle) fits only the lowest.
var renditionSpecs = []struct {
	name          string
	width, height int
	kbps          int
}{
	{"360p", 640, 360, 400},
	{"540p", 960, 540, 1200},
	{"720p", 1280, 720, 2500},
}

// audioKbps is the AAC bitrate muxed into every rendition.
const audioKbps = 64

// Rendition is one variant of the stream.
type Rendition struct {
	Name          string // "360p": the directory and the name the server matches
	Width, Height int
	VideoKbps     int // the encoder's (constant) video bitrate
	// Bandwidth is the BANDWIDTH attribute of the master playlist, bit/s: what
	// both players report as the rendition's bitrate (CMCD br is Bandwidth/1000).
	Bandwidth int
	// MeasuredKbps is the size of the media segments over their duration.
	MeasuredKbps int
}

// Media is the generated stream on disk.
type Media struct {
	Dir        string      // holds master.m3u8 and one directory per rendition
	Renditions []Rendition // lowest bitrate first, as in master.m3u8
	// Generated is how long ffmpeg took, 0 when the cache held the stream.
	Generated time.Duration
}

// Rendition returns the rendition called name.
func (m *Media) Rendition(name string) (Rendition, bool) {
	for _, r := range m.Renditions {
		if r.Name == name {
			return r, true
		}
	}
	return Rendition{}, false
}

// ffmpegArgs is the whole encode: one ffmpeg run writes the three renditions
// and the master playlist into the working directory. Constant bitrate with
// filler (nal-hrd=cbr) makes every segment of a rendition the same size, so
// the measured bitrates are the declared ones and a throttle has a predictable
// effect; a keyframe every 2 s with scene-cut detection off makes every
// segment start with one. ultrafast keeps the encode at ~15 s of CPU.
func ffmpegArgs() []string {
	d := strconv.Itoa(StreamSeconds)
	gop := strconv.Itoa(SegmentSeconds * frameRate)
	top := renditionSpecs[len(renditionSpecs)-1]
	args := []string{
		"-hide_banner", "-loglevel", "error", "-nostdin", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d:duration=%s", top.width, top.height, frameRate, d),
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=" + d,
	}
	var filter strings.Builder
	fmt.Fprintf(&filter, "[0:v]split=%d", len(renditionSpecs))
	for i := range renditionSpecs {
		fmt.Fprintf(&filter, "[s%d]", i)
	}
	for i, r := range renditionSpecs {
		fmt.Fprintf(&filter, ";[s%d]scale=%d:%d[v%d]", i, r.width, r.height, i)
	}
	args = append(args, "-filter_complex", filter.String())
	for i := range renditionSpecs {
		args = append(args, "-map", fmt.Sprintf("[v%d]", i))
	}
	for range renditionSpecs {
		args = append(args, "-map", "1:a")
	}
	args = append(args,
		"-c:v", "libx264", "-preset", "ultrafast", "-profile:v", "main", "-pix_fmt", "yuv420p",
		"-g", gop, "-keyint_min", gop, "-sc_threshold", "0", "-x264-params", "nal-hrd=cbr:force-cfr=1")
	for i, r := range renditionSpecs {
		k := strconv.Itoa(r.kbps) + "k"
		s := strconv.Itoa(i)
		args = append(args, "-b:v:"+s, k, "-maxrate:v:"+s, k, "-bufsize:v:"+s, k)
	}
	var streamMap []string
	for i, r := range renditionSpecs {
		streamMap = append(streamMap, fmt.Sprintf("v:%d,a:%d,name:%s", i, i, r.name))
	}
	args = append(args,
		"-c:a", "aac", "-b:a", strconv.Itoa(audioKbps)+"k", "-ac", "2",
		"-f", "hls", "-hls_time", strconv.Itoa(SegmentSeconds), "-hls_playlist_type", "vod",
		"-hls_segment_type", "fmp4", "-hls_flags", "independent_segments",
		"-master_pl_name", "master.m3u8", "-var_stream_map", strings.Join(streamMap, " "),
		"-hls_fmp4_init_filename", "init.mp4", "-hls_segment_filename", "%v/seg_%03d.m4s", "%v/index.m3u8")
	return args
}

// CacheDir is ${PLAYPULSE_CACHE:-$HOME/.cache/playpulse}, where the stream and
// the players' npm packages are kept between runs (outside the repository).
func CacheDir() (string, error) {
	if d := os.Getenv("PLAYPULSE_CACHE"); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("neither PLAYPULSE_CACHE nor HOME is set: %w", err)
	}
	return filepath.Join(home, ".cache", "playpulse"), nil
}

var (
	mediaOnce sync.Once
	media     *Media
	mediaErr  error
)

// GetMedia returns the stream, generating it with ffmpeg the first time into
// <cache>/media/<fingerprint of ffmpeg's version and arguments>; later calls
// and later runs reuse it. It fails the test when ffmpeg is missing.
func GetMedia(t testing.TB) *Media {
	t.Helper()
	mediaOnce.Do(func() { media, mediaErr = loadMedia() })
	if mediaErr != nil {
		t.Fatal(mediaErr)
	}
	return media
}

func loadMedia() (*Media, error) {
	ffmpeg, err := exec.LookPath("ffmpeg")
	if err != nil {
		return nil, errors.New("ffmpeg is not installed: run `make deps` (apt-get install ffmpeg)")
	}
	version, err := exec.Command(ffmpeg, "-version").Output()
	if err != nil {
		return nil, fmt.Errorf("ffmpeg -version: %v", err)
	}
	args := ffmpegArgs()
	firstLine, _, _ := strings.Cut(string(version), "\n")
	sum := sha256.Sum256([]byte(firstLine + "\x00" + strings.Join(args, "\x00")))
	cache, err := CacheDir()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(cache, "media", hex.EncodeToString(sum[:8]))
	m := &Media{Dir: dir}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, err
	}
	// Test packages run as parallel processes: one encodes, the others wait.
	unlock, err := lockFile(filepath.Join(filepath.Dir(dir), ".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if _, err := os.Stat(filepath.Join(dir, "master.m3u8")); err != nil {
		// Generate into a fresh directory beside it and rename it into place,
		// so an interrupted run never leaves half a stream.
		tmp, err := os.MkdirTemp(filepath.Dir(dir), ".gen-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(tmp)
		// nice 19: the encode shares two cores with the tests.
		cmd := exec.Command("nice", append([]string{"-n", "19", ffmpeg}, args...)...)
		cmd.Dir = tmp
		start := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		m.Generated = time.Since(start)
		_ = os.RemoveAll(dir) // a directory without master.m3u8 is a broken copy
		if err := os.Rename(tmp, dir); err != nil {
			return nil, fmt.Errorf("move the stream into the cache: %v", err)
		}
	}
	if m.Renditions, err = readMaster(dir); err != nil {
		return nil, err
	}
	return m, nil
}

// readMaster reads the renditions from master.m3u8 and measures their segments.
func readMaster(dir string) ([]Rendition, error) {
	f, err := os.Open(filepath.Join(dir, "master.m3u8"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Rendition
	var bandwidth int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "#EXT-X-STREAM-INF:"):
			bandwidth = 0
			for _, attr := range strings.Split(strings.TrimPrefix(line, "#EXT-X-STREAM-INF:"), ",") {
				if v, ok := strings.CutPrefix(attr, "BANDWIDTH="); ok {
					bandwidth, _ = strconv.Atoi(v)
				}
			}
		case line != "" && !strings.HasPrefix(line, "#"):
			name, _, ok := strings.Cut(line, "/")
			if !ok || bandwidth == 0 {
				return nil, fmt.Errorf("master.m3u8: unexpected variant %q", line)
			}
			r := Rendition{Name: name, Bandwidth: bandwidth}
			for _, s := range renditionSpecs {
				if s.name == name {
					r.Width, r.Height, r.VideoKbps = s.width, s.height, s.kbps
				}
			}
			segs, err := filepath.Glob(filepath.Join(dir, name, "seg_*.m4s"))
			if err != nil {
				return nil, err
			}
			if len(segs) != Segments {
				return nil, fmt.Errorf("%s: %d segments, want %d", name, len(segs), Segments)
			}
			var total int64
			for _, s := range segs {
				st, err := os.Stat(s)
				if err != nil {
					return nil, err
				}
				total += st.Size()
			}
			r.MeasuredKbps = int(total * 8 / 1000 / StreamSeconds)
			out = append(out, r)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) != len(renditionSpecs) {
		return nil, fmt.Errorf("master.m3u8 lists %d renditions, want %d", len(out), len(renditionSpecs))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Bandwidth < out[j].Bandwidth })
	return out, nil
}

// lockFile takes an exclusive flock on path (created if missing), waiting for
// another process that holds it.
func lockFile(path string) (unlock func(), err error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %v", path, err)
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}
