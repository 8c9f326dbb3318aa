package cmcd

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseAgainstHttpsfv holds the collector's own RFC 8941 parser to the
// maintained one it replaced for speed (github.com/dunglas/httpsfv, see
// sfv.go): for any line, both refuse it for the same reason or both accept
// it with the same report. `make fuzz` runs it; the corpus is kept in
// testdata/fuzz.
func FuzzParseAgainstHttpsfv(f *testing.F) {
	files, _ := filepath.Glob("../sessions/testdata/recorded/*.cmcd")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if i < 4 {
				f.Add([]byte(line))
			}
		}
	}
	for _, s := range []string{
		`v=2,sid="a\"b",sn=1,ts=5,e=ps,x=?1;p=:aGk=:,y=%"caf%c3%a9",z=@12,d=1.250,n=-5`,
		`v=2,sid="a",sn=1,ts=5,e=ps,br=(1 2;a=b 3.5),ec=("x" tok),sta=p;q, com.example-uid=*u`,
		"v=2,\tsid=\"a\",sn=1,ts=5,e=ps  ,  x",
		`v=2,sid="a",sn=1,ts=5,e=ps,v=2,sid="b"`,
		`a=1234567890123456,b=123456789012.123,c=1.2345,d=(,e=:=:`,
	} {
		f.Add([]byte(s))
	}
	opts := Options{UserIDKey: "com.example-uid", MaxLine: 2048}
	f.Fuzz(func(t *testing.T, line []byte) {
		got, err := Parse(line, opts)
		want, werr := parseReference(line, opts)
		if ReasonOf(err) != ReasonOf(werr) || (err == nil) != (werr == nil) {
			t.Fatalf("%q: Parse says %v, httpsfv says %v", line, err, werr)
		}
		if err == nil && !reflect.DeepEqual(got, want) {
			t.Fatalf("%q:\n got %+v\nwant %+v", line, got, want)
		}
		if err != nil && err.(*Error).Key != werr.(*Error).Key {
			t.Fatalf("%q: key %q, httpsfv %q", line, err.(*Error).Key, werr.(*Error).Key)
		}
	})
}
