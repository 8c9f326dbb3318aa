package docgen

import (
	"fmt"
	"regexp"

	collectorcfg "playpulse.dev/services/collector/pkg/config"
	controllercfg "playpulse.dev/services/controller/pkg/config"
	fanoutcfg "playpulse.dev/services/fanout/pkg/config"
	"playpulse.dev/services/playback/envconf"
	producercfg "playpulse.dev/services/producer/pkg/config"
)

// Configs maps each service to its config struct.
var Configs = map[string]any{
	"producer":   &producercfg.Config{},
	"fanout":     &fanoutcfg.Config{},
	"controller": &controllercfg.Config{},
	"collector":  &collectorcfg.Config{},
}

var configBlock = regexp.MustCompile(`(?s)(<!-- config:(\w+) -->\n).*?(<!-- /config:(\w+) -->)`)

// ConfigTables returns readme with every <!-- config:NAME --> block
// replaced by the current table of service NAME's variables. Every service
// must have its block.
func ConfigTables(readme []byte) ([]byte, error) {
	names := make([]string, 0, len(Configs))
	for name := range Configs {
		names = append(names, name)
	}
	return ServiceTables(readme, names...)
}

// ServiceTables is ConfigTables for a document that must hold the blocks
// of the named services only (docs/collector.md has the collector's).
func ServiceTables(doc []byte, required ...string) ([]byte, error) {
	readme := doc
	var err error
	seen := map[string]bool{}
	out := configBlock.ReplaceAllFunc(readme, func(m []byte) []byte {
		sub := configBlock.FindSubmatch(m)
		name := string(sub[2])
		spec, ok := Configs[name]
		if !ok || string(sub[4]) != name {
			err = fmt.Errorf("unknown or mismatched config block %q", name)
			return m
		}
		seen[name] = true
		md, e := envconf.Markdown(spec)
		if e != nil {
			err = e
			return m
		}
		return append(append(append([]byte{}, sub[1]...), md...), sub[3]...)
	})
	for _, name := range required {
		if !seen[name] && err == nil {
			err = fmt.Errorf("no <!-- config:%s --> block", name)
		}
	}
	return out, err
}
