package cmcd

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const base = `v=2,sid="s",sn=1,ts=1796422650683,e=ps,`

func TestParseRefusesWithAReason(t *testing.T) {
	tests := []struct {
		line, reason, key string
	}{
		{`hello world`, ReasonNotCMCD, ""},
		{`{"sid":"x"}`, ReasonNotCMCD, ""},
		{``, ReasonNotCMCD, ""},
		{`v=2,sid="s",sn=1,ts=5,e=ps,`, ReasonNotCMCD, ""}, // trailing comma
		{"v=2,sid=\"s\x01\",sn=1,ts=5,e=ps", ReasonControl, ""},
		{"v=2,sid=\"sé\",sn=1,ts=5,e=ps", ReasonControl, ""},
		{`sid="s",sn=1,ts=5,e=ps`, ReasonVersion, "v"},
		{`v=1,sid="s",sn=1,ts=5,e=ps`, ReasonVersion, "v"},
		{`v=3,sid="s",sn=1,ts=5,e=ps`, ReasonVersion, "v"},
		{`v=2,sn=1,ts=5,e=ps`, ReasonMissing, "sid"},
		{`v=2,sid="s",ts=5,e=ps`, ReasonMissing, "sn"},
		{`v=2,sid="s",sn=1,e=ps`, ReasonMissing, "ts"},
		{`v=2,sid="s",sn=1,ts=5`, ReasonMissing, "e"},
		{`v=2,sid=s,sn=1,ts=5,e=ps`, ReasonWrongType, "sid"},
		{`v=2,sid="s",sn="1",ts=5,e=ps`, ReasonWrongType, "sn"},
		{`v=2,sid="s",sn=1.5,ts=5,e=ps`, ReasonWrongType, "sn"},
		{base + `sta="p"`, ReasonWrongType, "sta"},
		{base + `br="fast"`, ReasonWrongType, "br"},
		{base + `ec=(1 2)`, ReasonWrongType, "ec"},
		{base + `cid=@1659578233`, ReasonWrongType, "cid"},
		{base + `cid=%"caf%c3%a9"`, ReasonWrongType, "cid"},
		{base + `sta=z`, ReasonInvalid, "sta"},
		{`v=2,sid="s",sn=-1,ts=5,e=ps`, ReasonInvalid, "sn"},
		{`v=2,sid="s",sn=4294967296,ts=5,e=ps`, ReasonInvalid, "sn"},
		{base + `msd=-3`, ReasonInvalid, "msd"},
		{base + `br=(99999999999)`, ReasonInvalid, "br"},
		{`v=2,sid="` + strings.Repeat("a", 65) + `",sn=1,ts=5,e=ps`, ReasonValueTooLong, "sid"},
		{base + `cid="` + strings.Repeat("a", 129) + `"`, ReasonValueTooLong, "cid"},
		{base + `com.example-uid="` + strings.Repeat("u", 65) + `"`, ReasonValueTooLong, "com.example-uid"},
		{base + `cid="<script>alert(1)</script>"`, ReasonUnsafe, "cid"},
		{base + `ec=("<img src=x onerror=alert(1)>")`, ReasonUnsafe, "ec"},
		{`v=2,sid="\"'><svg/onload=alert(1)>",sn=1,ts=5,e=ps`, ReasonUnsafe, "sid"},
		{base + strings.Repeat("a", 5000), ReasonLineTooLong, ""},
	}
	many := base[:len(base)-1]
	for i := range 70 {
		many += ",x" + strings.Repeat("k", i%26) + string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	tests = append(tests, struct{ line, reason, key string }{many, ReasonTooManyKeys, ""})
	for _, tt := range tests {
		t.Run(tt.reason+"/"+tt.line[:min(len(tt.line), 40)], func(t *testing.T) {
			_, err := Parse([]byte(tt.line), Options{UserIDKey: "com.example-uid"})
			e, ok := err.(*Error)
			if !ok || e.Reason != tt.reason || e.Key != tt.key {
				t.Fatalf("Parse(%q) = %v, want reason %s key %q", tt.line, err, tt.reason, tt.key)
			}
			if ReasonOf(err) != tt.reason {
				t.Fatal("ReasonOf disagrees")
			}
		})
	}
}

func TestParseKeeps(t *testing.T) {
	line := `bl=(7900),br=(2820 128),bsd=300,cdn="cdn-a",cid="title-1",com.example-uid=u42,e=bc,ec=("E1" "E2"),msd=407,mtp=(131600),ot=av,pt=12.4,sf=h,sid="5afd",sn=8,st=v,sta=p,ts=1796422681467,v=2,x-unknown=%"display",y-date=@1`
	r, err := Parse([]byte(line), Options{UserIDKey: "com.example-uid"})
	if err != nil {
		t.Fatal(err)
	}
	want := Report{SID: "5afd", SN: 8, TS: 1796422681467, Event: "bc", State: StatePlaying, CID: "title-1", BR: 2820, MSD: 407, BSD: 300, PT: 12, EC: []string{"E1", "E2"}, CDN: "cdn-a", UserID: "u42"}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got  %+v\nwant %+v", r, want)
	}
	canon := string(r.AppendLine(nil, "com.example-uid"))
	if canon != `br=2820,bsd=300,cdn="cdn-a",cid="title-1",com.example-uid="u42",e=bc,ec=("E1" "E2"),msd=407,pt=12,sid="5afd",sn=8,sta=p,ts=1796422681467,v=2` {
		t.Fatalf("canonical line %s", canon)
	}
	back, err := Parse([]byte(canon), Options{UserIDKey: "com.example-uid"})
	if err != nil || !reflect.DeepEqual(back, r) {
		t.Fatalf("round trip: %+v, %v", back, err)
	}
	// Without the key configured, the user id is not kept.
	if r, _ := Parse([]byte(line), Options{}); r.UserID != "" {
		t.Fatalf("user id %q without a key", r.UserID)
	}
}

// TestRecordedLinesRoundTrip: every line real players sent parses, and
// its canonical line parses to the same report.
func TestRecordedLinesRoundTrip(t *testing.T) {
	files, _ := filepath.Glob("../sessions/testdata/recorded/*.cmcd")
	if len(files) < 10 {
		t.Fatalf("recordings missing: %v", files)
	}
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			r, err := Parse([]byte(line), Options{})
			if err != nil {
				t.Fatalf("%s: %s: %v", f, line, err)
			}
			back, err := Parse(r.AppendLine(nil, ""), Options{})
			if err != nil || !reflect.DeepEqual(back, r) {
				t.Fatalf("%s: round trip of %s: %+v, %v", f, line, back, err)
			}
			n++
		}
	}
	if n < 800 {
		t.Fatalf("only %d lines", n)
	}
}

func TestValidKey(t *testing.T) {
	for k, ok := range map[string]bool{"com.example-uid": true, "x-u": true, "uid": false, "Com.example-uid": false, "com.example-u id": false, "": false, "9-a": false} {
		if ValidKey(k) != ok {
			t.Errorf("ValidKey(%q) = %v", k, !ok)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	line := []byte(`bl=(7900),br=(2820),cid="title-1",e=t,mtp=(153400),sf=h,sid="5afdaf2d-04a3-4a65-9431-3bff9fc4dcd6",sn=7,st=v,sta=p,ts=1796422660683,v=2`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(line, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendLine(b *testing.B) {
	r, _ := Parse([]byte(`bl=(7900),br=(2820),cid="title-1",e=t,mtp=(153400),sf=h,sid="5afdaf2d-04a3-4a65-9431-3bff9fc4dcd6",sn=7,st=v,sta=p,ts=1796422660683,v=2`), Options{})
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = r.AppendLine(buf[:0], "")
	}
}

func BenchmarkParseHttpsfv(b *testing.B) {
	line := []byte(`bl=(7900),br=(2820),cid="title-1",e=t,mtp=(153400),sf=h,sid="5afdaf2d-04a3-4a65-9431-3bff9fc4dcd6",sn=7,st=v,sta=p,ts=1796422660683,v=2`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseReference(line, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}
