package e2e

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestE2EMetrics scrapes /metrics from a running pxed serve after real
// traffic — ISC dhclient gets a pool address, curl fetches a file over
// TFTP and one over HTTP, a SIGHUP reloads the configuration — and checks
// that each counter moved by what happened.
func TestE2EMetrics(t *testing.T) {
	need(t, "dhclient", "curl")
	l := newLab(t, "192.0.2.1/24")
	l.setClientMAC("02:00:5e:00:53:77") // not in the config: a pool address
	tree := filepath.Join(l.dir, "tftpboot")
	os.MkdirAll(tree, 0o755)
	file := bytes.Repeat([]byte("boot "), 20000)
	os.WriteFile(filepath.Join(tree, "pxelinux.0"), file, 0o644)
	conf := strings.Replace(seedConf, "next-server 192.0.2.166;", "next-server 192.0.2.1;", 1)
	srv := l.startPxed(conf, t.TempDir(), "--tftp-addr", "192.0.2.1:69", "--http-addr", "192.0.2.1:8080", "--tftp-root", tree)

	env := l.dhclient(t)
	if !strings.HasPrefix(env["new_ip_address"], "192.0.2.") {
		t.Fatalf("dhclient bound %q", env["new_ip_address"])
	}
	for _, url := range []string{"tftp://192.0.2.1/pxelinux.0", "http://192.0.2.1:8080/pxelinux.0"} {
		if out, err := l.try(l.cli, 60*time.Second, "curl", "-sS", "-o", "/dev/null", url); err != nil {
			t.Fatalf("curl %s: %v\n%s", url, err, out)
		}
	}
	srv.cmd.Process.Signal(syscall.SIGHUP)
	for end := time.Now().Add(10 * time.Second); !strings.Contains(srv.log.String(), "reloaded"); {
		if time.Now().After(end) {
			t.Fatalf("no reload after SIGHUP:\n%s", srv.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}

	out, err := l.try(l.cli, 30*time.Second, "curl", "-sS", "http://192.0.2.1:8080/metrics")
	if err != nil {
		t.Fatalf("curl /metrics: %v\n%s", err, out)
	}
	got := parseMetrics(out)
	for _, c := range []struct {
		series string
		min    float64
	}{
		{`pxed_dhcp_messages_total{outcome="offer",type="DISCOVER"}`, 1},
		{`pxed_dhcp_messages_total{outcome="ack",type="REQUEST"}`, 1},
		{`pxed_dhcp_decision_seconds_count`, 2},
		{`pxed_lease_commit_seconds_count{result="ok"}`, 1},
		{`pxed_lease_records_committed_total`, 1},
		{`pxed_dhcp_pool_leased{subnet="192.0.2.0/24"}`, 1},
		{`pxed_tftp_transfers_started_total`, 1},
		{`pxed_tftp_transfers_total{result="ok"}`, 1},
		{`pxed_tftp_sent_bytes_total`, float64(len(file))},
		{`pxed_http_requests_total{code="200",route="files"}`, 1},
		{`pxed_reloads_total{result="ok"}`, 1},
		{`pxed_reload_last_success`, 1},
	} {
		if v, ok := got[c.series]; !ok || v < c.min {
			t.Errorf("%s = %v (present %v), want at least %v", c.series, v, ok, c.min)
		}
	}
	// The seed's pool: range dynamic-bootp 192.0.2.199 192.0.2.254.
	if v := got[`pxed_dhcp_pool_addresses{subnet="192.0.2.0/24"}`]; v != 56 {
		t.Errorf("pxed_dhcp_pool_addresses = %v, want the 56 of the seed's range", v)
	}
	if v := got[`pxed_tftp_transfers_active`]; v != 0 {
		t.Errorf("pxed_tftp_transfers_active = %v after every transfer ended", v)
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", out)
	}
}

// parseMetrics reads Prometheus's text format into series -> value.
func parseMetrics(text string) map[string]float64 {
	m := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			m[line[:i]] = v
		}
	}
	return m
}
