package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// seedConf is the first seed document's /etc/dhcpd.conf as shipped in
// examples/dhcpd.conf: verbatim except that 192.168.1.0/24 became
// 192.0.2.0/24 (tests stay in documentation ranges). The server itself is
// 192.0.2.1; 192.0.2.166 (router, DNS, next-server) is another machine, as
// in the seed.
var seedConf = func() string {
	b, err := os.ReadFile("../../examples/dhcpd.conf")
	if err != nil {
		panic(err)
	}
	return string(b)
}()

const dhclientScript = `#!/bin/sh
env | grep -E '^(reason|new_|interface)' > "@DUMP@.$reason"
case "$reason" in
BOUND|RENEW|REBIND|REBOOT) ip addr add "$new_ip_address/24" dev "$interface" 2>/dev/null ;;
esac
exit 0
`

// dhclient runs ISC dhclient once in the client namespace and returns the
// variables its script saw on BOUND.
func (l *lab) dhclient(t *testing.T, extra ...string) map[string]string {
	t.Helper()
	script := filepath.Join(l.dir, "dhclient-script")
	dump := filepath.Join(l.dir, "dhclient-env")
	// dhclient runs its script with a clean environment: bake the path in.
	os.WriteFile(script, []byte(strings.ReplaceAll(dhclientScript, "@DUMP@", dump)), 0o755)
	conf := filepath.Join(l.dir, "dhclient.conf")
	os.WriteFile(conf, []byte("timeout 20;\nretry 1;\nrequest subnet-mask, broadcast-address, time-offset, routers, domain-name, domain-name-servers, host-name, nis-domain, ntp-servers;\n"+l.dhclientConf), 0o644)
	args := append([]string{"dhclient", "-1", "-v", "-cf", conf, "-sf", script,
		"-lf", filepath.Join(l.dir, "dhclient.leases"), "-pf", filepath.Join(l.dir, "dhclient.pid")}, extra...)
	// dhclient forks into the background once bound; its output goes to a
	// file so the daemon does not hold a pipe open.
	logf := filepath.Join(l.dir, "dhclient.out")
	_, err := l.try(l.cli, 60*time.Second, append([]string{"sh", "-c", `exec "$@" >"$0" 2>&1`, logf}, append(args, l.cif)...)...)
	outb, _ := os.ReadFile(logf)
	out := string(outb)
	t.Cleanup(func() {
		l.try(l.cli, 10*time.Second, "sh", "-c", "kill $(cat "+filepath.Join(l.dir, "dhclient.pid")+") 2>/dev/null")
	})
	if err != nil {
		t.Fatalf("dhclient: %v\n%s", err, out)
	}
	b, err := os.ReadFile(dump + ".BOUND")
	if err != nil {
		t.Fatalf("dhclient did not bind: %v\n%s", err, out)
	}
	return envOf(string(b))
}

const udhcpcScript = `#!/bin/sh
env | grep -vE '^(PATH|HOME|PWD|SHLVL|_)=' > "$DUMP.$1"
[ "$1" = bound ] && ip addr add "$ip/$mask" dev "$interface" 2>/dev/null
exit 0
`

// udhcpc runs busybox udhcpc and returns the variables of its bound event
// (nil if it did not bind) and its output.
func (l *lab) udhcpc(t *testing.T, extra ...string) (map[string]string, string) {
	t.Helper()
	script := filepath.Join(l.dir, "udhcpc-script")
	os.WriteFile(script, []byte(udhcpcScript), 0o755)
	dump := filepath.Join(l.dir, "udhcpc-env")
	args := append([]string{"env", "DUMP=" + dump, "udhcpc", "-f", "-q", "-n", "-t", "3", "-T", "2", "-i", l.cif, "-s", script}, extra...)
	out, _ := l.try(l.cli, 60*time.Second, args...)
	b, err := os.ReadFile(dump + ".bound")
	if err != nil {
		return nil, out
	}
	return envOf(string(b)), out
}

func TestE2EDhclientGetsSeedFixedAddress(t *testing.T) {
	need(t, "dhclient")
	l := newLab(t, "192.0.2.1/24")
	srv := l.startPxed(seedConf, t.TempDir())
	l.setClientMAC("00:16:3e:72:79:e3") // test_pvm
	env := l.dhclient(t)
	for k, want := range map[string]string{
		"new_ip_address":             "192.0.2.199",
		"new_routers":                "192.0.2.166",
		"new_time_offset":            "-18000",
		"new_subnet_mask":            "255.255.255.0",
		"new_domain_name":            "example.com",
		"new_nis_domain":             "example.com",
		"new_domain_name_servers":    "192.0.2.166",
		"new_filename":               "pxelinux.0",
		"new_next_server":            "192.0.2.166",
		"new_dhcp_server_identifier": "192.0.2.1",
		"new_dhcp_lease_time":        "120",
	} {
		if env[k] != want {
			t.Errorf("%s = %q, want %q", k, env[k], want)
		}
	}
	// The ACK was unicast at L2 (client had no address, no broadcast flag).
	if !strings.Contains(srv.log.String(), "unicast to 00:16:3e:72:79:e3") {
		t.Errorf("pxed did not unicast the reply to the client's MAC:\n%s", srv.log.String())
	}
	// RELEASE: dhclient -r; the lease database says released.
	// (Fixed addresses have no lease record, as in ISC dhcpd: use a dynamic client.)
	l.setClientMAC("02:00:5e:00:53:01")
	l.in(l.cli, "ip", "addr", "flush", "dev", l.cif)
	// A new machine: no lease file (otherwise dhclient first asks for
	// test_pvm's address, which this non-authoritative config ignores).
	os.Remove(filepath.Join(l.dir, "dhclient.leases"))
	env = l.dhclient(t)
	ip := env["new_ip_address"]
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Compare(netip.MustParseAddr("192.0.2.200")) < 0 || a.Compare(netip.MustParseAddr("192.0.2.254")) > 0 {
		t.Fatalf("dynamic client got %q, want an address of the pool 192.0.2.200-254 (199 is test_pvm's)", ip)
	}
	if ls := l.leases(srv.stateDir); ls[ip].State != "bound" || ls[ip].MAC != "02:00:5e:00:53:01" {
		t.Fatalf("pxed leases after ACK: %+v", ls[ip])
	}
	l.in(l.cli, "dhclient", "-r", "-v", "-sf", filepath.Join(l.dir, "dhclient-script"), "-lf", filepath.Join(l.dir, "dhclient.leases"),
		"-pf", filepath.Join(l.dir, "dhclient.pid"), l.cif)
	deadline := time.Now().Add(5 * time.Second)
	for l.leases(srv.stateDir)[ip].State != "released" {
		if time.Now().After(deadline) {
			t.Fatalf("after dhclient -r, lease %s is %+v, want released", ip, l.leases(srv.stateDir)[ip])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestE2EUdhcpcGetsSeedFixedAddress(t *testing.T) {
	need(t, "udhcpc")
	l := newLab(t, "192.0.2.1/24")
	l.startPxed(seedConf, t.TempDir())
	l.setClientMAC("00:16:3e:72:79:e4") // test_hvm
	env, out := l.udhcpc(t, "-O", "timezone", "-O", "nisdomain")
	if env == nil {
		t.Fatalf("udhcpc did not bind:\n%s", out)
	}
	for k, want := range map[string]string{
		// busybox prints option 2 as unsigned: 2^32 - 18000 is -18000 on the wire.
		"ip": "192.0.2.177", "router": "192.0.2.166", "timezone": "4294949296", "siaddr": "192.0.2.166",
		"boot_file": "pxelinux.0", "subnet": "255.255.255.0", "domain": "example.com", "dns": "192.0.2.166",
		"serverid": "192.0.2.1", "lease": "120", "nisdomain": "example.com",
	} {
		if strings.TrimSpace(env[k]) != want {
			t.Errorf("%s = %q, want %q", k, env[k], want)
		}
	}
}

func TestE2EBootpc(t *testing.T) {
	need(t, "bootpc")
	l := newLab(t, "192.0.2.1/24")
	srv := l.startPxed(seedConf, t.TempDir())
	// bootpc sends to 255.255.255.255 and needs a route for it; it listens
	// on a plain UDP socket, so (like any BOOTP client without a raw
	// socket) it must ask for a broadcast reply (--serverbcast).
	l.in(l.cli, "ip", "route", "add", "default", "dev", l.cif)
	// A fixed host (the seed's Dell) over plain BOOTP.
	l.setClientMAC("00:19:b9:41:2c:b9")
	out := l.in(l.cli, "bootpc", "--dev", l.cif, "--serverbcast", "--timeoutwait", "10", "--returniffail")
	env := envOf(out)
	// SERVER is siaddr: the seed's next-server. The RFC 1048 options come too.
	if env["IPADDR"] != "192.0.2.188" || env["BOOTFILE"] != "pxelinux.0" || env["SERVER"] != "192.0.2.166" ||
		env["GATEWAYS"] != "192.0.2.166" || env["YPDOMAIN"] != "example.com" || env["NETMASK"] != "255.255.255.0" {
		t.Fatalf("bootpc fixed host: %q\n%s", env, out)
	}
	// A dynamic BOOTP client: an address from the dynamic-bootp range, infinite lease.
	l.setClientMAC("02:00:5e:00:53:02")
	out = l.in(l.cli, "bootpc", "--dev", l.cif, "--serverbcast", "--timeoutwait", "10", "--returniffail")
	ip := envOf(out)["IPADDR"]
	ls := l.leases(srv.stateDir)
	if ls[ip].State != "bound" || !ls[ip].Expiry.IsZero() && ls[ip].Expiry.Unix() > 0 {
		t.Fatalf("dynamic BOOTP client got %q; lease %+v (want bound, never expiring)\n%s", ip, ls[ip], out)
	}
}

func TestE2EInformWithDhcping(t *testing.T) {
	need(t, "dhcping")
	l := newLab(t, "192.0.2.1/24")
	l.startPxed(seedConf, t.TempDir())
	l.in(l.cli, "ip", "addr", "add", "192.0.2.50/24", "dev", l.cif)
	out, err := l.try(l.cli, 30*time.Second, "dhcping", "-i", "-v", "-t", "5", "-c", "192.0.2.50", "-s", "192.0.2.1", "-h", "02:00:5e:00:53:03")
	if err != nil || !strings.Contains(out, "Got answer from: 192.0.2.1") {
		t.Fatalf("dhcping -i (DHCPINFORM): %v\n%s", err, out)
	}
}

func TestE2EDeclineWithUdhcpcARPCheck(t *testing.T) {
	need(t, "udhcpc")
	l := newLab(t, "192.0.2.1/24")
	// The only pool address is also on the server's interface: udhcpc -a
	// finds it in use by ARP and must DECLINE it.
	l.in(l.srv, "ip", "addr", "add", "192.0.2.60/24", "dev", l.sif)
	conf := strings.Replace(seedConf, "range dynamic-bootp 192.0.2.199 192.0.2.254;", "range 192.0.2.60 192.0.2.60;", 1)
	srv := l.startPxed(conf, t.TempDir())
	l.setClientMAC("02:00:5e:00:53:04")
	env, out := l.udhcpc(t, "-a", "-t", "2")
	if env != nil {
		t.Fatalf("udhcpc bound %s although it is in use:\n%s", env["ip"], out)
	}
	if ls := l.leases(srv.stateDir); ls["192.0.2.60"].State != "declined" {
		t.Fatalf("192.0.2.60 after DECLINE: %+v\nudhcpc:\n%s", ls["192.0.2.60"], out)
	}
}

// perfdhcpStats pulls "sent packets" and "received packets" per exchange
// out of perfdhcp's report.
var perfdhcpRe = regexp.MustCompile(`(?s)\*\*\*Statistics for: (DISCOVER-OFFER|REQUEST-ACK)\*\*\*.*?sent packets: (\d+).*?received packets: (\d+)`)

func perfdhcpCounts(out string) map[string][2]int {
	m := map[string][2]int{}
	for _, g := range perfdhcpRe.FindAllStringSubmatch(out, -1) {
		s, _ := strconv.Atoi(g[2])
		r, _ := strconv.Atoi(g[3])
		m[g[1]] = [2]int{s, r}
	}
	return m
}

func TestE2ERelayWithPerfdhcp(t *testing.T) {
	need(t, "perfdhcp")
	l := newLab(t, "192.0.2.1/24")
	// perfdhcp sends to the server's unicast address as a relay agent with
	// giaddr 203.0.113.2: pxed must pick the 203.0.113.0/24 subnet by giaddr
	// and answer the relay.
	l.in(l.cli, "ip", "addr", "add", "203.0.113.2/24", "dev", l.cif)
	l.in(l.cli, "ip", "route", "add", "192.0.2.0/24", "dev", l.cif)
	l.in(l.srv, "ip", "route", "add", "203.0.113.0/24", "dev", l.sif)
	conf := seedConf + `
subnet 203.0.113.0 netmask 255.255.255.0 {
  option routers 203.0.113.1;
  range 203.0.113.100 203.0.113.200;
}
`
	srv := l.startPxed(conf, t.TempDir())
	out, _ := l.try(l.cli, 60*time.Second, "perfdhcp", "-4", "-l", "203.0.113.2", "-r", "20", "-R", "20", "-n", "20", "-W", "2000000", "192.0.2.1")
	c := perfdhcpCounts(out)
	if c["DISCOVER-OFFER"][1] < 20 || c["REQUEST-ACK"][1] < 20 {
		t.Fatalf("perfdhcp relay mode: %v, want 20 OFFERs and 20 ACKs\n%s", c, out)
	}
	n := 0
	for ip, lv := range l.leases(srv.stateDir) {
		if strings.HasPrefix(ip, "203.0.113.") && lv.State == "bound" {
			n++
		}
	}
	if n < 20 {
		t.Fatalf("%d bound leases in 203.0.113.0/24 after 20 relayed exchanges", n)
	}
	if !strings.Contains(srv.log.String(), "to relay 203.0.113.2") {
		t.Fatalf("pxed did not answer the relay")
	}
}

// ensure fmt is used even when some tests are edited away.
var _ = fmt.Sprintf

func TestE2EPingCheck(t *testing.T) {
	need(t, "udhcpc")
	l := newLab(t, "192.0.2.1/24")
	// 192.0.2.60 is already in use on the network (a static host that never
	// asked DHCP): ping-check must find it and offer 192.0.2.61 instead.
	l.in(l.cli, "ip", "addr", "add", "192.0.2.60/24", "dev", l.cif)
	conf := "ping-check true;\n" + strings.Replace(seedConf, "range dynamic-bootp 192.0.2.199 192.0.2.254;", "range 192.0.2.60 192.0.2.61;", 1)
	srv := l.startPxed(conf, t.TempDir())
	l.setClientMAC("02:00:5e:00:53:05")
	env, out := l.udhcpc(t)
	if env["ip"] != "192.0.2.61" {
		t.Fatalf("udhcpc got %q, want 192.0.2.61 (192.0.2.60 answers ping)\n%s", env["ip"], out)
	}
	if ls := l.leases(srv.stateDir); ls["192.0.2.60"].State != "abandoned" {
		t.Fatalf("192.0.2.60: %+v, want abandoned", ls["192.0.2.60"])
	}
}
