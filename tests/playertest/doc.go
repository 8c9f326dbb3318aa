// Package playertest proves the CMCD collector with real players, real video
// and a real browser (docs/collector.md, "Tests"): Debian's ffmpeg makes an
// HLS stream (media.go), a test server serves it and can throttle, hold and
// corrupt its segments (server.go), hls.js and Shaka Player from the npm
// registry at pinned versions (players.go, package.json) play it in test
// pages (web/) in Debian's headless Chromium (browser.go, through
// tests/browsertest), and the pages measure the playback themselves from
// the video element's events, to compare with what the collector made of
// the players' CMCD v2 reports.
//
// TestRealPlayers runs the real collector and fan-out binaries against a
// real Kafka broker and reads back with kcat and /api/snapshot;
// TestConfigSnippets checks the configuration docs/collector.md gives users
// against the pages. Missing chromium, ffmpeg, npm, node or kcat fail the
// tests (make deps installs them); they are never skipped. The stream and
// the players are cached under ${PLAYPULSE_CACHE:-~/.cache/playpulse}.
//
//	go test -race -count=1 -v ./tests/playertest/
package playertest
