package explain

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"pxed/internal/bootfs"
	"pxed/internal/pxeclient"
	"pxed/internal/pxelinux"
)

// pxelinux walks PXELINUX's search for a client that booted file with
// address ip from server, with the same client the Xen bootloader uses
// (pxeclient.Find) reading the boot tree as pxed serves it.
func (w *walk) pxelinux(file string, ip, server netip.Addr) {
	w.heading("pxelinux")
	uuid := ""
	if w.host != nil {
		uuid = w.host.CanonicalUUID()
	}
	client := bootfs.Client{Addr: ip, Local: server, Proto: "tftp"}
	files := w.in.Files
	lease := &pxeclient.Lease{IP: ip, File: file, NextServer: server}
	plan, err := pxeclient.Find(w.ctx, &pxeclient.TreeFetcher{FS: files, Client: client}, lease, w.hw, uuid, "", 0)
	prefix := pxeclient.PathPrefix(file, "")
	if plan != nil {
		prefix = plan.Prefix
	}
	if plan != nil {
		for _, t := range plan.Tried {
			src, shadowed := files.Source(client, t.Name)
			var de *bootfs.DeniedError
			switch {
			case t.Err == nil && shadowed:
				w.info("tried %s: found on disk, shadowing the inventory's generated config", t.Name)
			case t.Err == nil && src == "generated":
				w.info("tried %s: generated from the inventory", t.Name)
			case t.Err == nil:
				w.info("tried %s: found on disk", t.Name)
			case errors.As(t.Err, &de) || errors.Is(t.Err, fs.ErrPermission):
				w.info("tried %s: found on disk", t.Name)
				w.problem("%s: %v", t.Name, t.Err)
			case errors.Is(t.Err, fs.ErrNotExist):
				w.info("tried %s: not found", t.Name)
			default:
				w.info("tried %s: %v", t.Name, t.Err)
			}
		}
		if plan.Config != "" {
			tried := map[string]bool{}
			for _, t := range plan.Tried {
				tried[t.Name] = true
			}
			for _, n := range pxelinux.SearchPath(uuid, w.hw, ip) {
				if full := pxeclient.ResolveName(prefix, n); !tried[full] {
					w.info("(not tried) %s", full)
				}
			}
		}
	}
	w.checkNeverRequested(prefix, ip, uuid)
	if plan == nil || plan.Config == "" {
		w.problem("PXELINUX finds no config for this client: it stops at the boot prompt. Add the host to the inventory, or create %spxelinux.cfg/%s", prefix, pxelinux.MACName(w.hw))
		return
	}
	for i, line := range strings.Split(string(plan.ConfigData), "\n") {
		if strings.HasSuffix(strings.TrimRight(line, " \t\r"), `\`) {
			w.problem("%s:%d ends with a backslash: PXELINUX has no line continuation, so the next line is not part of this one (its words never reach the kernel). Join the lines", plan.Config, i+1)
		}
	}
	if err != nil {
		w.problem("%v", err)
		return
	}
	w.info("boots label %q (%s)", plan.Label, plan.Kind)
	if plan.Localboot {
		w.info("local disk (LOCALBOOT %d)", plan.Boot.Localboot)
		return
	}
	w.fetchable(plan.Kernel, "kernel")
	if len(plan.Modules) > 0 {
		for i, m := range plan.Modules {
			what := "module"
			switch i {
			case 0:
				what = "hypervisor"
			case 1:
				what = "dom0 kernel"
			}
			w.fetchable(m.Name, what)
			if m.Args != "" {
				w.info("    args: %s", m.Args)
			}
		}
		return
	}
	for _, i := range plan.Initrds {
		w.fetchable(i, "initrd")
	}
	w.info("append: %s", plan.Boot.Append)
}

// fetchable checks a name PXELINUX will ask for: in the tree, or a URL
// fetched elsewhere.
func (w *walk) fetchable(name, what string) {
	if pxeclient.IsURL(name) {
		w.info("%s %s: a URL, fetched from its server (not checked)", what, name)
		return
	}
	w.checkFile(name, what)
}

// checkNeverRequested flags files in pxelinux.cfg/ meant for this client
// under a name PXELINUX never asks for (wrong case, no "01-", colons).
func (w *walk) checkNeverRequested(prefix string, ip netip.Addr, uuid string) {
	if pxeclient.IsURL(prefix) {
		return
	}
	dir, err := bootfs.CleanName(prefix+"pxelinux.cfg", "")
	if err != nil {
		return
	}
	entries, err := os.ReadDir(filepath.Join(w.in.Files.Dir(), filepath.FromSlash(dir)))
	if err != nil {
		return
	}
	want := map[string]bool{}
	for _, n := range pxelinux.SearchPath(uuid, w.hw, ip) {
		want[strings.TrimPrefix(n, "pxelinux.cfg/")] = true
	}
	mac := pxelinux.MACName(w.hw)
	dashed := strings.TrimPrefix(mac, "01-")
	type variant struct{ name, why, fix string }
	vs := []variant{
		{mac, "PXELINUX asks for the MAC in lower case", mac},
		{dashed, "PXELINUX asks for 01-<mac> (01 is the ARP type of Ethernet)", mac},
		{w.hw.String(), "PXELINUX asks for 01-<mac> with dashes", mac},
		{"01-" + w.hw.String(), "PXELINUX asks for 01-<mac> with dashes", mac},
		{strings.ReplaceAll(dashed, "-", ""), "PXELINUX asks for 01-<mac> with dashes", mac},
		{mac + ".cfg", "PXELINUX asks for the name without an extension", mac},
	}
	if hexIP := pxelinux.HexIP(ip); hexIP != "" {
		vs = append(vs,
			variant{hexIP, "PXELINUX asks for the hex IP in upper case", hexIP},
			variant{hexIP + ".cfg", "PXELINUX asks for the name without an extension", hexIP},
			variant{ip.String(), "PXELINUX asks for the address in hex (pxed hexip " + ip.String() + ")", hexIP})
	}
	for _, ent := range entries {
		name := ent.Name()
		if want[name] {
			continue
		}
		for _, v := range vs {
			if strings.EqualFold(name, v.name) {
				w.problem("%spxelinux.cfg/%s is never requested: %s. Rename it to %spxelinux.cfg/%s", prefix, name, v.why, prefix, v.fix)
				break
			}
		}
	}
}
