package playertest

import (
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The players come from the npm registry at the exact versions of
// package.json, installed with `npm ci` from the committed lock file (so the
// integrity hashes are checked) into the cache, never into the repository and
// never from a CDN at run time.
var (
	//go:embed package.json
	packageJSON []byte
	//go:embed package-lock.json
	packageLock []byte
)

// The pinned versions; TestPlayersPinned checks package.json says the same.
const (
	HlsjsVersion = "1.7.4"
	ShakaVersion = "5.2.12"
)

var (
	playersOnce sync.Once
	playersDir  string
	playersErr  error
)

// Players returns the node_modules directory holding hls.js and shaka-player,
// running `npm ci` the first time into
// <cache>/npm/playertest-<hash of package.json and the lock file>.
func Players(t testing.TB) string {
	t.Helper()
	playersOnce.Do(func() { playersDir, playersErr = installPlayers() })
	if playersErr != nil {
		t.Fatal(playersErr)
	}
	return playersDir
}

func installPlayers() (string, error) {
	npm, err := exec.LookPath("npm")
	if err != nil {
		return "", errors.New("npm is not installed: run `make deps` (apt-get install nodejs npm)")
	}
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	h.Write(packageJSON)
	h.Write([]byte{0})
	h.Write(packageLock)
	dir := filepath.Join(cache, "npm", "playertest-"+hex.EncodeToString(h.Sum(nil)[:8]))
	modules := filepath.Join(dir, "node_modules")
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	unlock, err := lockFile(filepath.Join(filepath.Dir(dir), ".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if err := checkInstalled(modules); err == nil {
		return modules, nil
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".install-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	for name, b := range map[string][]byte{"package.json": packageJSON, "package-lock.json": packageLock} {
		if err := os.WriteFile(filepath.Join(tmp, name), b, 0o644); err != nil {
			return "", err
		}
	}
	cmd := exec.Command("nice", "-n", "10", npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts")
	cmd.Dir = tmp
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("npm ci of tests/playertest/package-lock.json: %v\n%s", err, out)
	}
	if err := checkInstalled(filepath.Join(tmp, "node_modules")); err != nil {
		return "", err
	}
	_ = os.RemoveAll(dir)
	if err := os.Rename(tmp, dir); err != nil {
		return "", fmt.Errorf("move the players into the cache: %v", err)
	}
	return modules, nil
}

// checkInstalled verifies that modules holds the pinned versions.
func checkInstalled(modules string) error {
	for name, want := range map[string]string{"hls.js": HlsjsVersion, "shaka-player": ShakaVersion} {
		b, err := os.ReadFile(filepath.Join(modules, name, "package.json"))
		if err != nil {
			return err
		}
		var p struct{ Version string }
		if err := json.Unmarshal(b, &p); err != nil {
			return fmt.Errorf("%s/package.json: %v", name, err)
		}
		if p.Version != want {
			return fmt.Errorf("%s is %s, want %s", name, p.Version, want)
		}
	}
	return nil
}
