// Package envconf loads a service's one configuration struct from the
// environment (github.com/kelseyhightower/envconfig tags), checks it, prints
// it for -h, and turns every bad value into an error that names the
// variable.
//
// A configuration is checked once, where it is declared:
//
//   - types, by envconfig: PRODUCER_RATE=fast does not parse as a number;
//   - ranges, by struct tags next to the field, min:"1" max:"60" (numbers
//     and durations, bounds included), which -h and the README tables print;
//   - formats, by the tag format:"listen" (a listen address, [host]:port, as
//     every *_ADDR is) or format:"hostport" (host:port, for each item of a
//     list of brokers);
//   - the rest (a value that depends on another, a name the API server
//     would refuse), by the struct's Validate method, which only checks.
//
// Items of a comma-separated list lose their surrounding spaces, and empty
// items are dropped: "a, b,," is the list a, b.
//
// Then the struct's resolve step (Resolver) turns the checked values into
// what the service runs with: files read, addresses parsed, patterns
// compiled, client settings built. MustLoad does all of it before main does
// anything else, so a bad value or an unreadable file exits with
// ExitInvalid and a line starting with the variable's name, never later.
//
// Nothing reads the environment or a configuration file after that: a
// service's main calls MustLoad once and hands on what Resolve returned.
// Credential files are the one exception, by design: the Kubernetes client
// re-reads the service-account token it was given, and the Kafka client
// layer keeps the paths of KAFKA_SASL_PASSWORD_FILE and KAFKA_TLS_*_FILE so
// that it can read them again when a mounted secret is rotated.
package envconf

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"reflect"
	"strconv"
	"strings"
	"text/tabwriter"
	"text/template"
	"time"

	"github.com/kelseyhightower/envconfig"
)

// ExitInvalid is the exit code for bad configuration or bad arguments, the
// same as flag's, so scripts can tell "fix your config" from "crashed".
const ExitInvalid = 2

// Version, when set, is printed by -h under the usage line. ops sets it from
// the version linked into the binary; it lives here because ops imports this
// package, not the other way round.
var Version string

// Validator is implemented by config structs with rules beyond types, tags
// and formats. Validate only checks: it must not change the struct (what is
// derived from the values belongs to the resolve step). Load calls it on
// every embedded struct first, then on the config struct itself.
type Validator interface {
	Validate() error
}

// Resolver is implemented by a service's config struct: Resolve turns the
// loaded, checked values into R, what the service is built from. It may read
// files and parse values; it must not touch the network. Its errors name a
// variable (Invalid), since they are configuration errors.
type Resolver[R any] interface {
	Resolve() (R, error)
}

// VarError is a problem with one variable.
type VarError struct {
	Var    string // e.g. PRODUCER_RATE
	Reason string
}

func (e *VarError) Error() string { return e.Var + ": " + e.Reason }

// Invalid returns a *VarError; Validate and Resolve methods use it so that
// every message starts with the variable a person has to fix.
func Invalid(name, format string, args ...any) error {
	return &VarError{Var: name, Reason: fmt.Sprintf(format, args...)}
}

// Load fills spec, a pointer to a struct, from the environment, tidies its
// lists, and checks it: types, then the min, max and format tags, then
// Validate. The first problem comes back as a *VarError.
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
	fs, err := fieldsOf(spec)
	if err != nil {
		return err
	}
	for _, f := range fs {
		if l, ok := f.value.Addr().Interface().(*[]string); ok {
			*l = tidyList(*l)
		}
	}
	if errs := fs.check(); len(errs) > 0 {
		return errs[0]
	}
	return validate(reflect.ValueOf(spec))
}

// validate calls Validate on the structs embedded in v (the Kafka client
// settings, the logging level: a service need not repeat those), then on v
// itself.
func validate(v reflect.Value) error {
	s := v.Elem()
	if s.Kind() == reflect.Struct {
		for i := range s.NumField() {
			if sf, f := s.Type().Field(i), s.Field(i); sf.Anonymous && sf.IsExported() && f.Kind() == reflect.Struct {
				if err := validate(f.Addr()); err != nil {
					return err
				}
			}
		}
	}
	// A Validate promoted from a single embedded struct runs twice; it only
	// checks, so that is harmless.
	if vv, ok := v.Interface().(Validator); ok {
		return vv.Validate()
	}
	return nil
}

// Check enforces the min, max and format tags of spec (a pointer to a
// struct) on the values it holds, and returns every violation, joined. Load
// does this; a library whose config struct is also used without the
// environment (sim.Config) calls it from its own Validate. Variable names
// are the struct's own, without the prefix a service may put before them.
func Check(spec any) error {
	fs, err := fieldsOf(spec)
	if err != nil {
		return err
	}
	return errors.Join(fs.check()...)
}

func tidyList(l []string) []string {
	out := l[:0]
	for _, s := range l {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
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

// MustLoad is Load and Resolve for main: "-h" or "--help" prints Usage to
// stdout and exits 0; any other argument, any bad value and any error of
// the resolve step print one line to stderr and exit with ExitInvalid.
func MustLoad[R any](name string, spec Resolver[R], args []string) R {
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
	err := Load(spec)
	var r R
	if err == nil {
		r, err = spec.Resolve()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: invalid configuration: %v\n", name, err)
		os.Exit(ExitInvalid)
	}
	return r
}

// Var describes one variable of a config struct.
type Var struct {
	Name        string
	Type        string
	Default     string
	Required    bool
	Min, Max    string // the min and max tags, as written; empty when none
	Description string
}

// Range is how -h and the README print the bounds: "1 to 60", "≥ 1s",
// "≤ 100"; empty when the variable has none.
func (v Var) Range() string {
	switch {
	case v.Min != "" && v.Max != "":
		return v.Min + " to " + v.Max
	case v.Min != "":
		return "≥ " + v.Min
	case v.Max != "":
		return "≤ " + v.Max
	}
	return ""
}

const varsTemplate = `{{range .}}{{usage_key .}}	{{usage_type .}}	{{usage_default .}}	{{usage_required .}}	{{.Tags.Get "min"}}	{{.Tags.Get "max"}}	{{usage_description .}}
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
		f := strings.SplitN(line, "\t", 7)
		if len(f) != 7 {
			continue
		}
		out = append(out, Var{Name: f[0], Type: f[1], Default: f[2], Required: f[3] == "true", Min: f[4], Max: f[5], Description: f[6]})
	}
	return out, nil
}

// Usage prints what -h shows: every variable, its default, its range and
// what it does.
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
	fmt.Fprintln(tw, "VARIABLE\tDEFAULT\tRANGE\tDESCRIPTION")
	for _, v := range vars {
		def := v.Default
		if v.Required {
			def = "(required)"
		} else if def == "" {
			def = `""`
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Name, def, v.Range(), v.Description)
	}
	tw.Flush()
}

var mdTemplate = template.Must(template.New("md").Parse(`| Variable | Default | Range | Description |
|---|---|---|---|
{{range .}}| ` + "`{{.Name}}`" + ` | {{if .Required}}(required){{else if .Default}}` + "`{{.Default}}`" + `{{end}} | {{.Range}} | {{.Description}} |
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

// field is one variable of a loaded struct: its name and where its value is.
type field struct {
	name  string
	value reflect.Value
	tags  reflect.StructTag
}

type fields []field

// fieldsOf walks spec the way envconfig does (envconfig.Usaget hands its
// own walk to a template), so the names are exactly the variables'.
func fieldsOf(spec any) (fields, error) {
	var fs fields
	tmpl := template.Must(template.New("fields").Funcs(template.FuncMap{
		"add": func(key string, v reflect.Value, tags reflect.StructTag) string {
			fs = append(fs, field{key, v, tags})
			return ""
		},
	}).Parse(`{{range .}}{{add .Key .Field .Tags}}{{end}}`))
	if err := envconfig.Usaget("", spec, io.Discard, tmpl); err != nil {
		return nil, err
	}
	return fs, nil
}

// check returns the violations of the min, max and format tags, in field
// order.
func (fs fields) check() []error {
	var errs []error
	for _, f := range fs {
		if err := f.checkRange(); err != nil {
			errs = append(errs, err)
		}
		if err := f.checkFormat(); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

var durationType = reflect.TypeFor[time.Duration]()

// checkRange enforces min and max, both inclusive. A tag on a field that
// has no order (a string, a list) is a programming error, reported as such.
func (f field) checkRange() error {
	lo, hasLo := f.tags.Lookup("min")
	hi, hasHi := f.tags.Lookup("max")
	if !hasLo && !hasHi {
		return nil
	}
	v := f.value
	var cmp func(bound string) (int, error) // sign of value - bound
	var shown string
	switch {
	case v.Type() == durationType:
		d := time.Duration(v.Int())
		shown = d.String()
		cmp = func(b string) (int, error) {
			bd, err := time.ParseDuration(b)
			return compare(float64(d), float64(bd)), err
		}
	case v.CanInt():
		shown = strconv.FormatInt(v.Int(), 10)
		cmp = func(b string) (int, error) {
			bi, err := strconv.ParseInt(b, 10, 64)
			return compare(float64(v.Int()), float64(bi)), err
		}
	case v.CanUint():
		shown = strconv.FormatUint(v.Uint(), 10)
		cmp = func(b string) (int, error) {
			bu, err := strconv.ParseUint(b, 10, 64)
			return compare(float64(v.Uint()), float64(bu)), err
		}
	case v.CanFloat():
		x := v.Float()
		shown = strconv.FormatFloat(x, 'g', -1, 64)
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return f.outOfRange(lo, hi, shown)
		}
		cmp = func(b string) (int, error) {
			bf, err := strconv.ParseFloat(b, 64)
			return compare(x, bf), err
		}
	default:
		return fmt.Errorf("envconf: %s: min and max apply to numbers and durations, not %s", f.name, v.Type())
	}
	for _, b := range []struct {
		set   bool
		bound string
		bad   int
	}{{hasLo, lo, -1}, {hasHi, hi, 1}} {
		if !b.set {
			continue
		}
		c, err := cmp(b.bound)
		if err != nil {
			return fmt.Errorf("envconf: %s: bad bound %q: %v", f.name, b.bound, err)
		}
		if c == b.bad {
			return f.outOfRange(lo, hi, shown)
		}
	}
	return nil
}

func compare(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (f field) outOfRange(lo, hi, got string) error {
	switch {
	case lo != "" && hi != "":
		return Invalid(f.name, "must be between %s and %s, got %s", lo, hi, got)
	case lo != "":
		return Invalid(f.name, "must be at least %s, got %s", lo, got)
	default:
		return Invalid(f.name, "must be at most %s, got %s", hi, got)
	}
}

// checkFormat enforces format:"listen" and format:"hostport" on a string or
// on each item of a list of strings.
func (f field) checkFormat() error {
	format, ok := f.tags.Lookup("format")
	if !ok {
		return nil
	}
	var values []string
	switch x := f.value.Interface().(type) {
	case string:
		values = []string{x}
	case []string:
		values = x
	default:
		return fmt.Errorf("envconf: %s: format applies to strings and lists of strings, not %s", f.name, f.value.Type())
	}
	for _, s := range values {
		var err error
		switch format {
		case "listen":
			err = listenAddr(s)
		case "hostport":
			err = hostPort(s)
		default:
			return fmt.Errorf("envconf: %s: unknown format %q", f.name, format)
		}
		if err != nil {
			return Invalid(f.name, "%q is not %v", s, err)
		}
	}
	return nil
}

// listenAddr accepts what net.Listen("tcp", s) takes with a numeric port:
// ":8080", "0.0.0.0:8080", "[::1]:0", "localhost:8080".
func listenAddr(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil || !validPort(port, 0) {
		return errors.New("a listen address, [host]:port with a port from 0 to 65535 (e.g. :8080)")
	}
	return nil
}

// hostPort accepts host:port with both parts, as a broker address.
func hostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" || !validPort(port, 1) {
		return errors.New("host:port with a port from 1 to 65535 (e.g. kafka-0:9092)")
	}
	return nil
}

func validPort(p string, lowest uint64) bool {
	n, err := strconv.ParseUint(p, 10, 16)
	return err == nil && n >= lowest
}
