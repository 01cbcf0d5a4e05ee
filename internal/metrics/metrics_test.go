package metrics

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestHTTPAnswered(t *testing.T) {
	m := New()
	m.HTTPAnswered("files", 200)
	m.HTTPAnswered("files", 200)
	m.HTTPAnswered("files", 404)
	if v := testutil.ToFloat64(m.httpRequests.WithLabelValues("files", "200")); v != 2 {
		t.Errorf("200s counted: %v, want 2", v)
	}
	if v := testutil.ToFloat64(m.httpRequests.WithLabelValues("files", "404")); v != 1 {
		t.Errorf("404s counted: %v, want 1", v)
	}
}

func TestTransfersAndReloads(t *testing.T) {
	m := New()
	m.TransferStarted()
	m.TransferStarted()
	m.TransferDone(1000, 2, nil)
	if v := testutil.ToFloat64(m.tftpActive); v != 1 {
		t.Errorf("active %v, want 1", v)
	}
	m.TransferDone(10, 0, errors.New("timed out"))
	if ok, failed := testutil.ToFloat64(m.tftpDone.WithLabelValues("ok")), testutil.ToFloat64(m.tftpDone.WithLabelValues("failed")); ok != 1 || failed != 1 {
		t.Errorf("ok %v failed %v", ok, failed)
	}
	if v := testutil.ToFloat64(m.tftpBytes); v != 1010 {
		t.Errorf("bytes %v", v)
	}
	m.Reload(errors.New("bad file"))
	if v := testutil.ToFloat64(m.lastReloadOK); v != 0 {
		t.Errorf("after a failed reload: last success %v, want 0", v)
	}
	m.Reload(nil)
	if v := testutil.ToFloat64(m.lastReloadOK); v != 1 {
		t.Errorf("after a good reload: last success %v, want 1", v)
	}
	m.DHCPMessage("DISCOVER", "offer", 20*time.Microsecond)
	if v := testutil.ToFloat64(m.dhcpMessages.WithLabelValues("DISCOVER", "offer")); v != 1 {
		t.Errorf("DISCOVER/offer %v", v)
	}
	m.Pools(func() []PoolUsage { return []PoolUsage{{Subnet: "192.0.2.0/24", Size: 56, Leased: 3}} })
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{`pxed_dhcp_pool_addresses{subnet="192.0.2.0/24"} 56`, `pxed_dhcp_pool_leased{subnet="192.0.2.0/24"} 3`,
		"pxed_tftp_retransmissions_total 2", "go_goroutines"} {
		if !strings.Contains(rec.Body.String(), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
