// Package docs renders the generated parts of the README: one table of
// environment variables per service, taken from the config structs.
package docs

import (
	"fmt"
	"regexp"

	controllercfg "playpulse.dev/services/controller/config"
	fanoutcfg "playpulse.dev/services/fanout/config"
	"playpulse.dev/services/playback/envconf"
	producercfg "playpulse.dev/services/producer/config"
)

// Configs maps each service to its config struct.
var Configs = map[string]any{
	"producer":   &producercfg.Config{},
	"fanout":     &fanoutcfg.Config{},
	"controller": &controllercfg.Config{},
}

var block = regexp.MustCompile(`(?s)(<!-- config:(\w+) -->\n).*?(<!-- /config:(\w+) -->)`)

// Render returns readme with every config block replaced by the current
// table.
func Render(readme []byte) ([]byte, error) {
	var err error
	out := block.ReplaceAllFunc(readme, func(m []byte) []byte {
		sub := block.FindSubmatch(m)
		name := string(sub[2])
		spec, ok := Configs[name]
		if !ok || string(sub[4]) != name {
			err = fmt.Errorf("README: unknown or mismatched config block %q", name)
			return m
		}
		md, e := envconf.Markdown(spec)
		if e != nil {
			err = e
			return m
		}
		return append(append(append([]byte{}, sub[1]...), md...), sub[3]...)
	})
	return out, err
}
