package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"pxed/internal/testutil"
	"slices"
	"strings"
	"testing"
)

// unitFile is the service definition shipped for packages.
const unitFile = "../../contrib/systemd/pxed.service"

// TestSystemdUnit checks contrib/systemd/pxed.service: systemd's own
// verifier accepts it without a word (unknown keys are only warnings to
// it, so any output fails), with ExecStart pointing at a freshly built
// pxed; and it says what pxed relies on: readiness by sd_notify (which
// `pxed serve` sends once every listener is bound), reload by SIGHUP, the
// unprivileged user with exactly two capabilities, its own state directory.
func TestSystemdUnit(t *testing.T) {
	keys := testutil.UnitKeys(t, unitFile)
	for k, want := range map[string]string{
		"Type":                   "notify",
		"ExecReload":             "/bin/kill -HUP $MAINPID",
		"User":                   "pxed",
		"AmbientCapabilities":    "CAP_NET_BIND_SERVICE CAP_NET_RAW",
		"CapabilityBoundingSet":  "CAP_NET_BIND_SERVICE CAP_NET_RAW",
		"NoNewPrivileges":        "yes",
		"StateDirectory":         "pxed",
		"ConfigurationDirectory": "pxed",
		"ProtectSystem":          "strict",
	} {
		if !slices.Contains(keys[k], want) {
			t.Errorf("%s: %s=%q, want %q", unitFile, k, keys[k], want)
		}
	}
	exec0 := strings.Fields(keys["ExecStart"][0])
	if exec0[0] != "/usr/bin/pxed" || exec0[1] != "serve" {
		t.Fatalf("ExecStart=%q, want /usr/bin/pxed serve …", keys["ExecStart"])
	}

	analyze := needTool(t, "systemd-analyze")
	bin := buildPxed(t)
	b, err := os.ReadFile(unitFile)
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "pxed.service")
	if err := os.WriteFile(unit, []byte(strings.ReplaceAll(string(b), "/usr/bin/pxed", bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(analyze, "verify", unit).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Fatalf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The flags ExecStart gives are serve's.
	args := append(exec0[2:], "--bogus-check-only")
	if out, _ := exec.Command(bin, append([]string{"serve"}, args...)...).CombinedOutput(); !strings.Contains(string(out), "bogus-check-only") {
		t.Fatalf("pxed serve %q did not get as far as the unknown flag:\n%s", args, out)
	}
}
