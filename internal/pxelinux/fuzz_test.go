package pxelinux

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that whatever parses renders
// to text that parses to the same Config (line numbers included, since
// rendering keeps one line per input line), that rendering is then a
// fixed point, and that Resolve does not panic either.
func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.cfg")
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("text help\nx\n")
	f.Add("menu begin\nlabel a\nmenu end\n")
	f.Add("label a\n\x00kernel\x01k\r\n")
	f.Fuzz(func(t *testing.T, src string) {
		c, err := Parse("fuzz", strings.NewReader(src))
		if err != nil {
			if _, ok := err.(*ParseError); !ok {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		out := c.Render()
		c2, err := Parse("fuzz", strings.NewReader(string(out)))
		if err != nil {
			t.Fatalf("rendering does not parse: %v\nrendered:\n%q", err, out)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip changed the config\ninput:\n%q\nrendered:\n%q", src, out)
		}
		if out2 := c2.Render(); string(out2) != string(out) {
			t.Fatalf("rendering is not a fixed point:\n%q\n%q", out, out2)
		}
		labels := c.Labels()
		if len(labels) > 3 {
			labels = labels[:3]
		}
		for _, l := range append(labels, nil) {
			name := ""
			if l != nil {
				name = l.Name + " extra"
			}
			b, err := c.Resolve(name)
			if err == nil && b.Kind == "" {
				t.Fatalf("Resolve(%q) gave no kind", name)
			}
		}
	})
}
