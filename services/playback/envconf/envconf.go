// Package envconf loads a service's one configuration struct from the
// environment (github.com/kelseyhightower/envconfig tags), prints it for -h,
// and turns every bad value into an error that names the variable.
//
// A service's main calls MustLoad once; nothing else reads the environment.
package envconf

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"text/template"

	"github.com/kelseyhightower/envconfig"
)

// ExitInvalid is the exit code for bad configuration or bad arguments, the
// same as flag's, so scripts can tell "fix your config" from "crashed".
const ExitInvalid = 2

// Version, when set, is printed by -h under the usage line. ops sets it from
// the version linked into the binary; it lives here because ops imports this
// package, not the other way round.
var Version string

// Validator is implemented by config structs with rules beyond types.
type Validator interface {
	Validate() error
}

// VarError is a problem with one variable.
type VarError struct {
	Var    string // e.g. PRODUCER_RATE
	Reason string
}

func (e *VarError) Error() string { return e.Var + ": " + e.Reason }

// Invalid returns a *VarError; config Validate methods use it so that every
// message starts with the variable a person has to fix.
func Invalid(name, format string, args ...any) error {
	return &VarError{Var: name, Reason: fmt.Sprintf(format, args...)}
}

// Load fills spec, a pointer to a struct, from the environment and validates
// it. Type errors and Validate's errors both come back as *VarError.
func Load(spec any) error {
	if err := envconfig.Process("", spec); err != nil {
		var pe *envconfig.ParseError
		if errors.As(err, &pe) {
			return &VarError{Var: pe.KeyName, Reason: fmt.Sprintf("cannot parse %q as %s: %v", pe.Value, pe.TypeName, unwrapParse(pe.Err))}
		}
		// envconfig's other errors ("required key X missing value") already
		// name the variable.
		return err
	}
	if v, ok := spec.(Validator); ok {
		return v.Validate()
	}
	return nil
}

func unwrapParse(err error) error {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err
		}
		err = u
	}
}

// MustLoad is Load for main: "-h" or "--help" prints Usage to stdout and
// exits 0; any other argument or any bad value prints one line to stderr and
// exits with ExitInvalid.
func MustLoad(name string, spec any, args []string) {
	for _, a := range args {
		switch a {
		case "-h", "-help", "--help", "help":
			Usage(os.Stdout, name, spec)
			os.Exit(0)
		default:
			fmt.Fprintf(os.Stderr, "%s: unexpected argument %q: configuration comes from the environment; run %s -h\n", name, a, name)
			os.Exit(ExitInvalid)
		}
	}
	if err := Load(spec); err != nil {
		fmt.Fprintf(os.Stderr, "%s: invalid configuration: %v\n", name, err)
		os.Exit(ExitInvalid)
	}
}

// Var describes one variable of a config struct.
type Var struct {
	Name        string
	Type        string
	Default     string
	Required    bool
	Description string
}

const varsTemplate = `{{range .}}{{usage_key .}}	{{usage_type .}}	{{usage_default .}}	{{usage_required .}}	{{usage_description .}}
{{end}}`

// Vars lists the variables spec reads, in field order. Nested structs (the
// Kafka client settings, the simulator knobs) are flattened.
func Vars(spec any) ([]Var, error) {
	var b strings.Builder
	if err := envconfig.Usagef("", spec, &b, varsTemplate); err != nil {
		return nil, err
	}
	var out []Var
	for _, line := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		f := strings.SplitN(line, "\t", 5)
		if len(f) != 5 {
			continue
		}
		out = append(out, Var{Name: f[0], Type: f[1], Default: f[2], Required: f[3] == "true", Description: f[4]})
	}
	return out, nil
}

// Usage prints what -h shows: every variable, its default and what it does.
func Usage(w io.Writer, name string, spec any) {
	vars, err := Vars(spec)
	if err != nil {
		fmt.Fprintf(w, "%s: %v\n", name, err)
		return
	}
	fmt.Fprintf(w, "Usage: %s\n\n", name)
	if Version != "" {
		fmt.Fprintf(w, "%s %s\n\n", name, Version)
	}
	fmt.Fprint(w, "Configured only through environment variables:\n\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tDEFAULT\tDESCRIPTION")
	for _, v := range vars {
		def := v.Default
		if v.Required {
			def = "(required)"
		} else if def == "" {
			def = `""`
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v.Name, def, v.Description)
	}
	tw.Flush()
}

var mdTemplate = template.Must(template.New("md").Parse(`| Variable | Default | Description |
|---|---|---|
{{range .}}| ` + "`{{.Name}}`" + ` | {{if .Required}}(required){{else if .Default}}` + "`{{.Default}}`" + `{{end}} | {{.Description}} |
{{end}}`))

// Markdown renders the variables as a table for the README. A test compares
// the README with this output, so the docs cannot drift from the code.
func Markdown(spec any) (string, error) {
	vars, err := Vars(spec)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if err := mdTemplate.Execute(&b, vars); err != nil {
		return "", err
	}
	return b.String(), nil
}
