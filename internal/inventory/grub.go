package inventory

import (
	"bytes"
	"fmt"
	"net/url"
	"strings"
)

// GRUB renders h's GRUB 2 configuration for boot state st: one menu entry
// booted at once — `linux`/`initrd` for a kernel, `multiboot2`/`module2`
// for Xen — or, for a host that boots its disk, `exit` (UEFI firmware then
// tries its next boot entry). Paths are absolute on the server GRUB was
// loaded from, so kernels and initrds come the way GRUB came (TFTP).
func (h *Host) GRUB(st State, env Env) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(header("#", h, st))
	p := h.prof
	if st == Local || p.Localboot {
		fmt.Fprintf(&b, "echo %s\nexit\n", grubWord("pxed: host "+h.Name+" boots from its local disk"))
		return b.Bytes(), nil
	}
	line, err := h.CommandLine(env)
	if err != nil {
		return nil, err
	}
	path := func(s string) (string, error) {
		if !strings.Contains(s, "://") {
			return grubWord("/" + strings.TrimPrefix(s, "/")), nil
		}
		// GRUB 2.06 names an HTTP file (http,HOST)/PATH, on port 80 only.
		u, err := url.Parse(s)
		if err != nil || u.Scheme != "http" || (u.Port() != "" && u.Port() != "80") || u.RawQuery != "" {
			return "", fmt.Errorf("host %s: profile %s: GRUB cannot fetch %q (it takes http:// URLs on port 80 only)", h.Name, p.Name, s)
		}
		return grubWord("(http," + u.Hostname() + ")" + u.EscapedPath()), nil
	}
	var cmds []string
	add := func(cmd, file, args string) error {
		f, err := path(file)
		if err != nil {
			return err
		}
		c := cmd + " " + f
		for _, a := range strings.Fields(args) {
			c += " " + grubWord(a)
		}
		cmds = append(cmds, c)
		return nil
	}
	switch {
	case p.Multiboot != nil:
		m := p.Multiboot
		err = add("multiboot2", m.Hypervisor, m.HypervisorArgs)
		if err == nil {
			err = add("module2", m.Kernel, line)
		}
		for _, i := range m.Initrd {
			if err == nil {
				err = add("module2", i, "")
			}
		}
	default:
		linux := func(kernel string, initrd []string, line string) error {
			if err := add("linux", kernel, line); err != nil {
				return err
			}
			if len(initrd) == 0 {
				return nil
			}
			c := "initrd"
			for _, i := range initrd {
				f, err := path(i)
				if err != nil {
					return err
				}
				c += " " + f
			}
			cmds = append(cmds, c)
			return nil
		}
		// Per-architecture files: GRUB picks by the CPU it runs on.
		vs := p.variants(true)
		if len(vs) == 0 {
			err = linux(p.Kernel, p.Initrd, line)
			break
		}
		branch := func(head, kernel string, initrd []string, line string) error {
			cmds = append(cmds, head)
			n := len(cmds)
			err := linux(kernel, initrd, line)
			for i := n; i < len(cmds); i++ {
				cmds[i] = "  " + cmds[i]
			}
			return err
		}
		for i, v := range vs {
			kw := "elif"
			if i == 0 {
				kw = "if"
			}
			vline, verr := h.variantLine(v, line, env)
			if verr != nil {
				err = verr
				break
			}
			if err = branch(kw+` [ "$grub_cpu" = `+grubWord(v.cpu)+" ]; then", v.kernel, v.initrd, vline); err != nil {
				break
			}
		}
		if err == nil {
			err = branch("else", p.Kernel, p.Initrd, line)
			cmds = append(cmds, "fi")
		}
	}
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(&b, "set default=0\nset timeout=0\nmenuentry %s {\n", grubWord(h.Name+": "+p.Name))
	fmt.Fprintf(&b, "  echo %s\n", grubWord("pxed: booting "+h.Name+" ("+p.Name+")"))
	for _, c := range cmds {
		b.WriteString("  " + c + "\n")
	}
	b.WriteString("}\n")
	return b.Bytes(), nil
}

// grubWord quotes s as one word of GRUB's script language: bare when it
// holds only characters GRUB takes literally, else in single quotes
// (which keep everything but the single quote, written '\”).
func grubWord(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9' || strings.ContainsRune("_-./,:=+@%^()", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
