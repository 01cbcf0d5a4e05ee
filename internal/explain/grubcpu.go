package explain

// grubCPU follows the per-architecture branches of a generated GRUB
// config (if [ "$grub_cpu" = arm64 ]; then … elif … else … fi) as a GRUB
// running on cpu takes them, so that explain checks the files that GRUB
// boots and not another architecture's.
type grubCPU struct {
	cpu string
	// skip: inside a branch this GRUB does not take; taken: it took one.
	skip, taken bool
}

// other reports whether the config line of fields f is outside the
// branches this GRUB takes (the branch keywords themselves included).
func (g *grubCPU) other(f []string) bool {
	switch {
	case len(f) >= 5 && (f[0] == "if" || f[0] == "elif") && f[1] == "[" && f[2] == `"$grub_cpu"` && f[3] == "=":
		g.skip = f[4] != g.cpu || g.taken
		g.taken = g.taken || !g.skip
		return true
	case len(f) == 1 && f[0] == "else" && (g.skip || g.taken):
		g.skip = g.taken
		return true
	case len(f) == 1 && f[0] == "fi" && (g.skip || g.taken):
		g.skip, g.taken = false, false
		return true
	}
	return g.skip
}
