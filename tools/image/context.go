package image

import (
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// Context is a build context: a directory and its .dockerignore.
type Context struct {
	Dir string
	pm  *patternmatcher.PatternMatcher
}

// OpenContext reads dir/.dockerignore (if any).
func OpenContext(dir string) (*Context, error) {
	c := &Context{Dir: dir}
	f, err := os.Open(filepath.Join(dir, ".dockerignore"))
	if os.IsNotExist(err) {
		return c, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		return nil, err
	}
	if c.pm, err = patternmatcher.New(patterns); err != nil {
		return nil, err
	}
	return c, nil
}

// Ignored reports whether a context path (slash-separated, relative) is left
// out by .dockerignore, walking its parents as the Docker builder does, so
// that an exception below an excluded directory works as it does there.
func (c *Context) Ignored(p string) bool {
	if c.pm == nil {
		return false
	}
	var info patternmatcher.MatchInfo
	matched := false
	parts := strings.Split(path.Clean(p), "/")
	for i := range parts {
		var err error
		matched, info, err = c.pm.MatchesUsingParentResults(strings.Join(parts[:i+1], "/"), info)
		if err != nil {
			return true
		}
	}
	return matched
}

// Files lists the regular files of the context that a COPY source (a file,
// a directory or a glob) names, after .dockerignore, as slash-separated
// paths relative to the context.
func (c *Context) Files(src string) ([]string, error) {
	matches, err := filepath.Glob(filepath.Join(c.Dir, filepath.FromSlash(src)))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, m := range matches {
		err := filepath.WalkDir(m, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			rel, err := filepath.Rel(c.Dir, p)
			if err != nil {
				return err
			}
			if rel = filepath.ToSlash(rel); !c.Ignored(rel) {
				out = append(out, rel)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// isDirSource reports whether a COPY source names one directory, whose
// content (not the directory itself) Docker copies into the destination.
func (c *Context) isDirSource(src string) bool {
	m, _ := filepath.Glob(filepath.Join(c.Dir, filepath.FromSlash(src)))
	if len(m) != 1 {
		return false
	}
	fi, err := os.Stat(m[0])
	return err == nil && fi.IsDir()
}
