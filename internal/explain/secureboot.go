package explain

import (
	"bytes"
	"debug/pe"
	"fmt"
	"io"
	"path"
	"strings"

	"pxed/internal/bootfs"
	"pxed/internal/bootplan"
)

// signer is who signed an EFI program, as far as Secure Boot goes.
type signer int

const (
	unsigned  signer = iota
	microsoft        // Microsoft's UEFI CA: firmware with its keys runs it (shim)
	vendor           // another CA (Debian's): only shim, which carries it, runs it
)

func (s signer) String() string {
	switch s {
	case microsoft:
		return "signed by Microsoft's UEFI CA (the firmware runs it)"
	case vendor:
		return "signed by a distribution's key (only shim runs it)"
	}
	return "not signed"
}

// maxProgram bounds what explain reads of one boot program or kernel.
const maxProgram = 256 << 20

// peSigner reads a PE image's Authenticode certificate table (the data
// directory Secure Boot verifies) and says who signed it. It trusts
// nothing in the file: offsets are checked against its size, and the
// table is read only up to 1 MiB.
func peSigner(data []byte) (signer, error) {
	f, err := pe.NewFile(bytes.NewReader(data))
	if err != nil {
		return unsigned, fmt.Errorf("not an EFI program: %v", err)
	}
	defer f.Close()
	var dirs []pe.DataDirectory
	switch h := f.OptionalHeader.(type) {
	case *pe.OptionalHeader64:
		dirs = h.DataDirectory[:min(h.NumberOfRvaAndSizes, uint32(len(h.DataDirectory)))]
	case *pe.OptionalHeader32:
		dirs = h.DataDirectory[:min(h.NumberOfRvaAndSizes, uint32(len(h.DataDirectory)))]
	}
	const security = 4 // IMAGE_DIRECTORY_ENTRY_SECURITY: a file offset, not an RVA
	if len(dirs) <= security || dirs[security].Size == 0 {
		return unsigned, nil
	}
	off, n := uint64(dirs[security].VirtualAddress), uint64(dirs[security].Size)
	if off >= uint64(len(data)) || n > 1<<20 || off+n > uint64(len(data)) {
		return unsigned, fmt.Errorf("its certificate table (offset %d, %d bytes) lies outside the file", off, n)
	}
	// The signer's certificate chain names its issuer in plain ASCII.
	if bytes.Contains(data[off:off+n], []byte("Microsoft Corporation UEFI CA")) {
		return microsoft, nil
	}
	return vendor, nil
}

// readFile reads a boot-tree file as client c would get it (bounded).
func (w *walk) readFile(c bootfs.Client, name string) ([]byte, error) {
	f, err := w.in.Files.OpenFor(c, strings.TrimLeft(name, "/"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxProgram+1))
	if err == nil && len(data) > maxProgram {
		err = fmt.Errorf("larger than %d MiB", maxProgram>>20)
	}
	return data, err
}

// secureBoot walks the UEFI answers' boot chain as Secure Boot firmware
// would: the first program must be signed by Microsoft's UEFI CA (shim),
// shim needs its second stage (grubx64.efi) beside it, and GRUB through
// shim boots only a signed kernel. Under --secure-boot what the firmware
// or shim would refuse is a problem; otherwise a note.
func (w *walk) secureBoot(a answers) {
	var files []answer
	for _, ans := range []answer{a.efi, a.http, a.arm64} {
		if ans.answered && ans.file != "" && !isBIOSLoader(ans.file) {
			files = append(files, ans)
		}
	}
	if len(files) == 0 {
		return
	}
	w.heading("secure boot")
	refused := w.note
	if w.in.SecureBoot {
		refused = w.problem
	}
	client := bootfs.Client{Local: a.server}
	if w.host != nil && w.host.Addr().IsValid() {
		client.Addr = w.host.Addr()
	}
	seen := map[string]bool{}
	for _, ans := range files {
		name := ans.file
		if strings.Contains(name, "://") {
			// UEFI HTTP boot: the path on pxed's HTTP server.
			_, p, _ := strings.Cut(strings.TrimPrefix(name, "http://"), "/")
			name = p
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		data, err := w.readFile(client, name)
		if err != nil {
			w.info("%s (%s): cannot read it: %v", name, ans.kind, err)
			continue
		}
		sig, err := peSigner(data)
		if err != nil {
			refused("%s (%s): %v; Secure Boot firmware will not run it", name, ans.kind, err)
			continue
		}
		w.info("%s (%s): %s", name, ans.kind, sig)
		switch sig {
		case unsigned:
			refused("%s is not signed: firmware with Secure Boot on refuses it (\"Access Denied\"). For Secure Boot give the profile loader: grub and put the distribution's shim and signed GRUB in the boot tree (Debian: shim-signed and grub-efi-amd64-signed or grub-efi-arm64-signed)", name)
		case vendor:
			refused("%s is trusted only through shim: firmware with Secure Boot on refuses it as the first program (\"Access Denied\"). Send shim (shimx64.efi, shimaa64.efi) and put this GRUB beside it", name)
		}
		if chain, ok := bootplan.ShimChains[path.Base(name)]; ok {
			w.shimNext(client, chain, path.Join(path.Dir(name), chain.GRUB), refused)
		}
	}
}

// shimNext checks the program shim loads (grubx64.efi beside it) and,
// when pxed generates this client's GRUB config, the kernels it boots.
func (w *walk) shimNext(c bootfs.Client, chain bootplan.SecureBootChain, name string, refused func(string, ...any)) {
	data, err := w.readFile(c, name)
	if err != nil {
		w.problem("shim loads %s from its own directory, and it cannot be read: %v. Install %s and copy %s there as %s", name, err, chain.SignedPackage, chain.SignedFile, path.Base(name))
		return
	}
	sig, err := peSigner(data)
	switch {
	case err != nil:
		refused("%s (loaded by shim): %v", name, err)
		return
	case sig == unsigned:
		refused("%s (loaded by shim) is not signed: shim refuses it under Secure Boot", name)
	default:
		w.info("%s (loaded by shim): %s", name, sig)
	}
	if !c.Addr.IsValid() {
		w.note("grub/grub.cfg is generated for the client at its address; this host has no fixed address, so explain cannot show it")
		return
	}
	cfg, err := w.readFile(c, "grub/grub.cfg")
	if err != nil {
		w.problem("GRUB reads grub/grub.cfg (Debian's signed network GRUB reads nothing else), and it cannot be read for %s: %v", c.Addr, err)
		return
	}
	w.info("grub/grub.cfg for %s (%s GRUB):", c.Addr, chain.CPU)
	cpu := grubCPU{cpu: chain.CPU}
	for _, l := range strings.Split(strings.TrimRight(string(cfg), "\n"), "\n") {
		w.info("  %s", l)
		f := strings.Fields(l)
		if cpu.other(f) {
			continue
		}
		if len(f) >= 2 && f[0] == "multiboot2" {
			if w.in.SecureBoot {
				w.problem("  GRUB under Secure Boot refuses multiboot2 (shim lock): a Xen host boots this way with Secure Boot off")
				continue
			}
			// Debian's signed network GRUB has no multiboot2 built in: it
			// loads the module from its prefix on the server.
			mod := chain.ModuleDir + "/multiboot2.mod"
			if _, err := w.in.Files.Stat(mod); err != nil {
				w.problem("  multiboot2: Debian's signed network GRUB has no multiboot2 command built in and loads %s from the server, which is missing: copy the *.mod and *.lst of %s (the signed GRUB's version) to %s/ in the boot tree", mod, chain.ModulePackage, chain.ModuleDir)
			} else {
				w.info("  %s: ok (GRUB loads it for multiboot2; with Secure Boot on it may not, and refuses multiboot2)", mod)
			}
			continue
		}
		if len(f) < 2 || f[0] != "linux" {
			continue
		}
		kernel := strings.Trim(f[1], "'")
		kd, err := w.readFile(c, kernel)
		if err != nil {
			w.problem("  %s %s: cannot read it: %v", f[0], kernel, err)
			continue
		}
		if ks, err := peSigner(kd); err != nil || ks == unsigned {
			refused("  %s is not a signed EFI kernel: GRUB under Secure Boot refuses it (\"bad shim signature\"); boot a distribution's signed kernel", kernel)
		} else {
			w.info("  %s: %s", kernel, ks)
		}
	}
}
