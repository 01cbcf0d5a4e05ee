// Package metrics is pxed's Prometheus instrumentation: one registry with
// the DHCP, lease, TFTP, HTTP and reload metrics (all named pxed_…), fed by
// the observer hooks of the servers, and the handler that serves them on
// /metrics. The server packages know nothing of Prometheus: they call
// small interfaces this package implements.
package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics holds pxed's metrics. The zero value is not usable: use New.
type Metrics struct {
	reg *prometheus.Registry

	dhcpMessages *prometheus.CounterVec   // type, outcome
	dhcpDecision prometheus.Histogram     // seconds
	leasePut     *prometheus.HistogramVec // result
	leaseRecords prometheus.Counter

	tftpStarted  prometheus.Counter
	tftpDone     *prometheus.CounterVec // result
	tftpBytes    prometheus.Counter
	tftpRetrans  prometheus.Counter
	tftpActive   prometheus.Gauge
	httpRequests *prometheus.CounterVec // route, code
	reloads      *prometheus.CounterVec // result
	lastReloadOK prometheus.Gauge
	storeUp      prometheus.Gauge
	storeBlocks  prometheus.Gauge
}

// New makes the metrics and their registry, with the Go runtime's and the
// process's own metrics beside them.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.dhcpMessages = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pxed_dhcp_messages_total",
		Help: "DHCP messages received, by message type and outcome (the reply sent, none, dropped)."}, []string{"type", "outcome"})
	m.dhcpDecision = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "pxed_dhcp_decision_seconds",
		Help:    "Time to decide the answer to one DHCP message (no I/O).",
		Buckets: prometheus.ExponentialBuckets(5e-6, 2, 14)})
	m.leasePut = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "pxed_lease_commit_seconds",
		Help:    "Time to make one batch of leases durable (a write transaction and its fsync), by result.",
		Buckets: prometheus.ExponentialBuckets(1e-4, 2, 14)}, []string{"result"})
	m.leaseRecords = prometheus.NewCounter(prometheus.CounterOpts{Name: "pxed_lease_records_committed_total",
		Help: "Lease records made durable."})
	m.tftpStarted = prometheus.NewCounter(prometheus.CounterOpts{Name: "pxed_tftp_transfers_started_total",
		Help: "TFTP transfers accepted."})
	m.tftpDone = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pxed_tftp_transfers_total",
		Help: "TFTP transfers ended, by result (ok, failed)."}, []string{"result"})
	m.tftpBytes = prometheus.NewCounter(prometheus.CounterOpts{Name: "pxed_tftp_sent_bytes_total",
		Help: "File bytes TFTP clients acknowledged."})
	m.tftpRetrans = prometheus.NewCounter(prometheus.CounterOpts{Name: "pxed_tftp_retransmissions_total",
		Help: "TFTP packets or windows sent again."})
	m.tftpActive = prometheus.NewGauge(prometheus.GaugeOpts{Name: "pxed_tftp_transfers_active",
		Help: "TFTP transfers in progress."})
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pxed_http_requests_total",
		Help: "HTTP requests answered, by route (files, api, metrics) and status code."}, []string{"route", "code"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "pxed_reloads_total",
		Help: "Reloads of the inventory and DHCP configuration, by result (ok, failed)."}, []string{"result"})
	m.lastReloadOK = prometheus.NewGauge(prometheus.GaugeOpts{Name: "pxed_reload_last_success",
		Help: "1 if the last reload succeeded (or none was tried), 0 if it failed and the previous configuration is still served."})
	m.storeUp = prometheus.NewGauge(prometheus.GaugeOpts{Name: "pxed_store_up",
		Help: "1 while the lease store can write (bolt: always; etcd: this server holds its etcd lease and a quorum answers), 0 while no lease is written."})
	m.storeBlocks = prometheus.NewGauge(prometheus.GaugeOpts{Name: "pxed_store_blocks_owned",
		Help: "Blocks of 64 pool addresses this server owns in a cluster (etcd store): it offers and newly binds only their addresses."})
	for _, c := range []prometheus.Collector{m.dhcpMessages, m.dhcpDecision, m.leasePut, m.leaseRecords, m.tftpStarted,
		m.tftpDone, m.tftpBytes, m.tftpRetrans, m.tftpActive, m.httpRequests, m.reloads, m.lastReloadOK, m.storeUp, m.storeBlocks} {
		f(c)
	}
	m.lastReloadOK.Set(1)
	m.storeUp.Set(1)
	return m
}

// StoreUp records whether the lease store can write.
func (m *Metrics) StoreUp(up bool) {
	if up {
		m.storeUp.Set(1)
	} else {
		m.storeUp.Set(0)
	}
}

// StoreBlocks records how many address blocks this server owns.
func (m *Metrics) StoreBlocks(n int) { m.storeBlocks.Set(float64(n)) }

// Handler serves the metrics in Prometheus's text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Register adds collectors of the caller's (lease and pool gauges read at
// scrape time).
func (m *Metrics) Register(c ...prometheus.Collector) { m.reg.MustRegister(c...) }

// DHCPMessage counts one DHCP message of type typ ("DISCOVER", …,
// "malformed") and its outcome ("offer", "ack", "nak", "none", …), and how
// long the decision took.
func (m *Metrics) DHCPMessage(typ, outcome string, decide time.Duration) {
	m.dhcpMessages.WithLabelValues(typ, outcome).Inc()
	if decide > 0 {
		m.dhcpDecision.Observe(decide.Seconds())
	}
}

// LeaseCommit records one batch of lease records written (err nil) or not.
func (m *Metrics) LeaseCommit(d time.Duration, records int, err error) {
	if err != nil {
		m.leasePut.WithLabelValues("failed").Observe(d.Seconds())
		return
	}
	m.leasePut.WithLabelValues("ok").Observe(d.Seconds())
	m.leaseRecords.Add(float64(records))
}

// TransferStarted counts a TFTP transfer accepted.
func (m *Metrics) TransferStarted() {
	m.tftpStarted.Inc()
	m.tftpActive.Inc()
}

// TransferDone counts a TFTP transfer that ended.
func (m *Metrics) TransferDone(bytes int64, retransmits int, err error) {
	m.tftpActive.Dec()
	result := "ok"
	if err != nil {
		result = "failed"
	}
	m.tftpDone.WithLabelValues(result).Inc()
	m.tftpBytes.Add(float64(bytes))
	m.tftpRetrans.Add(float64(retransmits))
}

// Reload counts a reload and remembers whether the last one worked.
func (m *Metrics) Reload(err error) {
	if err != nil {
		m.reloads.WithLabelValues("failed").Inc()
		m.lastReloadOK.Set(0)
		return
	}
	m.reloads.WithLabelValues("ok").Inc()
	m.lastReloadOK.Set(1)
}

// HTTPAnswered counts one HTTP answer under route ("files", "api",
// "metrics") with its status code.
func (m *Metrics) HTTPAnswered(route string, code int) {
	m.httpRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
}

// PoolUsage is one subnet's dynamic pools at a scrape: how many addresses
// they hold and how many of those are leased.
type PoolUsage struct {
	Subnet       string
	Size, Leased int
}

// Pools makes the pool gauges (pxed_dhcp_pool_addresses and
// pxed_dhcp_pool_leased, by subnet) read f at each scrape.
func (m *Metrics) Pools(f func() []PoolUsage) {
	m.reg.MustRegister(&poolCollector{f: f,
		size: prometheus.NewDesc("pxed_dhcp_pool_addresses", "Addresses in the dynamic pools of a subnet.", []string{"subnet"}, nil),
		used: prometheus.NewDesc("pxed_dhcp_pool_leased", "Addresses of a subnet's dynamic pools bound to a client.", []string{"subnet"}, nil),
	})
}

type poolCollector struct {
	f          func() []PoolUsage
	size, used *prometheus.Desc
}

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.size; ch <- c.used }

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, p := range c.f() {
		ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(p.Size), p.Subnet)
		ch <- prometheus.MustNewConstMetric(c.used, prometheus.GaugeValue, float64(p.Leased), p.Subnet)
	}
}
