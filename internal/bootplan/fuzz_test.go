package bootplan

import (
	"bytes"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"

	"pxed/internal/bootfs"
	"pxed/internal/config"
	"pxed/internal/inventory"
	"pxed/internal/pxelinux"
)

// FuzzParse checks that any inventory either fails with positioned errors
// or yields hosts whose generated files say exactly what the profile says:
// the PXELINUX config resolves to the profile's kernel (no injected
// statement), and the iPXE script has one command per line it meant.
func FuzzParse(f *testing.F) {
	if b, err := os.ReadFile(example); err == nil {
		f.Add(string(b))
	}
	f.Add("profiles: {p: {kernel: k, append: 'a {{.Vars.x}}'}}\nhosts: [{name: h, mac: '00:16:3e:00:00:01', profile: p, vars: {x: \"1\\nKERNEL evil\"}}]\n")
	f.Add("profiles: {p: {multiboot: {hypervisor: x, hypervisor-args: \"a\\nLOCALBOOT 0\", kernel: k}}}\nhosts: [{name: h, mac: '00:16:3e:00:00:01', profile: p}]\n")
	f.Add("profiles: {p: {kernel: \"k\\nLOCALBOOT 0\"}}\n")
	f.Add("hosts: [{name: h, mac: '00:16:3e:00:00:01', ip: 192.0.2.1, uuid: 00112233445566778899aabbccddeeff, profile: p}]\nprofiles: {p: {localboot: true}}\n")
	f.Fuzz(func(t *testing.T, src string) {
		inv, err := inventory.Parse("fuzz.yaml", []byte(src))
		if err != nil {
			var es config.Errors
			if !errors.As(err, &es) {
				t.Fatalf("error of type %T: %v", err, err)
			}
			return
		}
		live := New(Options{Inventory: inv, HTTPPort: 8080, States: inventory.NewStates(nil, nil)})
		c := bootfs.Client{Local: netip.MustParseAddr("192.0.2.1")}
		for _, h := range inv.Hosts {
			for _, st := range []inventory.State{inventory.Install, inventory.Local} {
				live.States().Set(inv, h.Name, st, "fuzz")
				for _, name := range HostNames(h) {
					data, _, ok := live.Generate(c, name)
					if !ok {
						t.Fatalf("%s: %s not generated", h.Name, name)
					}
					cfg, err := pxelinux.Parse(name, bytes.NewReader(data))
					if err != nil {
						t.Fatalf("generated config does not parse: %v\n%s", err, data)
					}
					b, err := cfg.Resolve("")
					if err != nil {
						t.Fatalf("generated config does not resolve: %v\n%s", err, data)
					}
					p := h.ProfileOf()
					want := p.Kernel
					switch {
					case st == inventory.Local || p.Localboot:
						want = ""
					case p.Multiboot != nil:
						want = p.Multiboot.Loader
					}
					if b.Kernel != want || (want == "") != (b.Kind == pxelinux.KindLocalboot) {
						t.Fatalf("state %s: resolves to %q (%s), want %q\n%s", st, b.Kernel, b.Kind, want, data)
					}
					if n := len(cfg.Labels()); n != 1 {
						t.Fatalf("%d labels, want 1\n%s", n, data)
					}
				}
				script, _, ok := live.Generate(c, "ipxe/"+strings.ReplaceAll(h.HWAddrs()[0].String(), ":", "-"))
				if !ok {
					t.Fatal("no iPXE script")
				}
				for _, line := range strings.Split(strings.TrimSpace(string(script)), "\n") {
					if w, _, _ := strings.Cut(line, " "); !map[string]bool{"#!ipxe": true, "#": true, "kernel": true, "initrd": true, "module": true, "boot": true, "echo": true, "exit": true}[w] {
						t.Fatalf("unexpected iPXE line %q\n%s", line, script)
					}
				}
			}
		}
	})
}
