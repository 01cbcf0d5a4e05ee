package main

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"pxed/internal/testutil"
)

// script writes `pxed completion SHELL` to a file.
func script(t *testing.T, sh string) string {
	t.Helper()
	var out, errb testutil.SyncBuffer
	if code := run([]string{"completion", sh}, &out, &errb); code != 0 {
		t.Fatalf("pxed completion %s: exit %d: %s", sh, code, errb.String())
	}
	f := filepath.Join(t.TempDir(), "pxed."+sh)
	writeFile(t, f, []byte(out.String()))
	return f
}

// TestCompletionBash completes in a real bash: commands, then each
// command's own flags, from the same definitions the commands parse.
func TestCompletionBash(t *testing.T) {
	bash := needTool(t, "bash")
	f := script(t, "bash")
	complete := func(words ...string) string {
		t.Helper()
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + w + "'"
		}
		prog := "source " + f + "; COMP_WORDS=(" + strings.Join(quoted, " ") + "); COMP_CWORD=" + strconv.Itoa(len(words)-1) + "; _pxed; echo \"${COMPREPLY[*]}\""
		out, err := exec.Command(bash, "--norc", "-c", prog).CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for _, c := range []struct {
		words []string
		want  string
	}{
		{[]string{"pxed", "se"}, "serve"},
		{[]string{"pxed", "xen"}, "xen-bootloader"},
		{[]string{"pxed", "serve", "--tftp-r"}, "--tftp-retries --tftp-root"},
		{[]string{"pxed", "check", "--str"}, "--strict"},
		{[]string{"pxed", "leases", "--con"}, "--config"},
		{[]string{"pxed", "vm", "--dis"}, "--disk"},
		{[]string{"pxed", "lab", "--uef"}, "--uefi --uefi-http"},
		{[]string{"pxed", "lab", "--sec"}, "--secure-boot"},
		{[]string{"pxed", "host", "--js"}, "--json"},
	} {
		if got := complete(c.words...); got != c.want {
			t.Errorf("completing %q: %q, want %q", c.words, got, c.want)
		}
	}
	if got := complete("pxed", "leases", "--tftp"); got != "" {
		t.Errorf("leases has no --tftp flags, completion offered %q", got)
	}
}

// TestCompletionZsh loads the zsh script in a real zsh (through
// bashcompinit) and checks that it registers the completion for pxed.
func TestCompletionZsh(t *testing.T) {
	zsh := needTool(t, "zsh")
	f := script(t, "zsh")
	out, err := exec.Command(zsh, "-f", "-c", "autoload -U compinit && compinit -u; source "+f+"; print -r -- ${_comps[pxed]}").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "_pxed") {
		t.Fatalf("zsh: %v, pxed completes with %q, want _pxed", err, out)
	}
}

// TestCompletionFish asks a real fish what it completes.
func TestCompletionFish(t *testing.T) {
	fish := needTool(t, "fish")
	f := script(t, "fish")
	for _, c := range []struct{ line, want string }{
		{"pxed se", "serve\trun the DHCP, TFTP and HTTP boot servers"},
		{"pxed serve --tftp-ro", "--tftp-root\tboot tree"},
		{"pxed leases --js", "--json\tprint JSON instead of a table"},
	} {
		out, err := exec.Command(fish, "--no-config", "-c", "source "+f+"; complete -C '"+c.line+"'").CombinedOutput()
		if err != nil || !strings.Contains(string(out), c.want) {
			t.Errorf("fish completing %q: %v\n%s\nwant a line starting %q", c.line, err, out, c.want)
		}
	}
}

// TestManPage renders `pxed man` with groff, warnings on, and finds every
// command and a flag of each kind in it.
func TestManPage(t *testing.T) {
	groff := needTool(t, "groff")
	var out, errb testutil.SyncBuffer
	if code := run([]string{"man"}, &out, &errb); code != 0 {
		t.Fatalf("pxed man: exit %d: %s", code, errb.String())
	}
	page := filepath.Join(t.TempDir(), "pxed.8")
	writeFile(t, page, []byte(out.String()))
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", page)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	text, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("groff: %v\n%s", err, stderr.String())
	}
	plain := stripOverstrike(string(text))
	for _, want := range append(commandNames(), "SYNOPSIS", "--tftp-root", "--strict", "--disk", "--serve-arg", "/etc/pxed/pxed.yaml") {
		if !strings.Contains(plain, want) {
			t.Errorf("the manual page lacks %q", want)
		}
	}
}

// stripOverstrike removes groff's bold and underline (X\bX, _\bX).
func stripOverstrike(s string) string {
	var b strings.Builder
	r := []rune(s)
	for i := 0; i < len(r); i++ {
		if i+1 < len(r) && r[i+1] == '\b' {
			i++ // skip the overstruck character and the backspace
			continue
		}
		b.WriteRune(r[i])
	}
	return b.String()
}
