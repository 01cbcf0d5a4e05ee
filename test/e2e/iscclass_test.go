package e2e

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// classConf is a dhcpd.conf with the classes, conditionals and pool
// permits PXE sites write; ISC dhcpd and pxed serve it as it is.
const classConf = `authoritative;
default-lease-time 600;
max-lease-time 7200;
option arch code 93 = unsigned integer 16;

class "pxeclients" {
  match if substring(option vendor-class-identifier, 0, 9) = "PXEClient";
  next-server 192.0.2.1;
}
class "httpclients" {
  match if substring(option vendor-class-identifier, 0, 10) = "HTTPClient";
  option vendor-class-identifier "HTTPClient";
  filename "http://192.0.2.1/shimx64.efi";
}
class "ipxe" {
  match if exists user-class and option user-class = "iPXE";
  filename "http://192.0.2.1/boot.ipxe";
}
class "vendor" {
  match option vendor-class-identifier;
}
subclass "vendor" "PXEClient:Arch:00009:UNDI:003016" {
  server-name "ebc";
}

subnet 192.0.2.0 netmask 255.255.255.0 {
  option routers 192.0.2.1;
  pool {
    range 192.0.2.10 192.0.2.19;
    deny unknown-clients;
  }
  pool {
    range 192.0.2.100 192.0.2.119;
    allow members of "pxeclients";
    allow members of "httpclients";
  }
  if option arch = 00:07 {
    filename "ipxe.efi";
  } elsif option arch = 00:09 {
    filename "ipxe9.efi";
  } else {
    filename "undionly.kpxe";
  }
  if not exists user-class {
    server-name "nouc";
  }
  if substring(hardware, 1, 3) = 00:16:3e {
    next-server 192.0.2.3;
  }
}

host known {
  hardware ethernet 02:00:5e:00:53:01;
}
host xen {
  hardware ethernet 00:16:3e:00:53:02;
}
host fixed {
  hardware ethernet 02:00:5e:00:53:03;
  fixed-address 192.0.2.5;
  if known {
    filename "known.0";
  }
}
`

// classClient is one client of the differential test: udhcpc with args,
// or ISC dhclient with dhclient.conf statements.
type classClient struct {
	name     string
	mac      string
	args     []string // udhcpc's
	dhclient string   // dhclient.conf statements: run dhclient instead
}

// pxe reports whether the client says it is a PXE client (option 60).
func (c classClient) pxe() bool {
	return strings.Contains(strings.Join(c.args, " "), "PXEClient") || strings.Contains(c.dhclient, "PXEClient")
}

// classAnswer is what a server answered a client, as udhcpc saw it.
type classAnswer struct {
	pool, file, siaddr, sname, vendor string
}

func (a classAnswer) String() string {
	return fmt.Sprintf("%-7s %-30s %-11s %-5s %s", a.pool, a.file, a.siaddr, a.sname, a.vendor)
}

// poolOf names where an address comes from, since the two servers choose
// different free addresses of the same pool.
func poolOf(ip string) string {
	a, err := netip.ParseAddr(ip)
	switch {
	case ip == "":
		return "none"
	case err != nil:
		return "bad:" + ip
	case a == netip.MustParseAddr("192.0.2.5"):
		return "fixed"
	case !a.Less(netip.MustParseAddr("192.0.2.10")) && !netip.MustParseAddr("192.0.2.19").Less(a):
		return "known"
	case !a.Less(netip.MustParseAddr("192.0.2.100")) && !netip.MustParseAddr("192.0.2.119").Less(a):
		return "pxe"
	}
	return "other:" + ip
}

// TestE2EISCClassesDifferential runs ISC dhcpd and then pxed on the same
// dhcpd.conf with classes, subclasses, conditionals and pool permits, and
// drives the same udhcpc clients (PXE BIOS/UEFI vendor classes and arch
// option 93, UEFI HTTP, iPXE's user class, plain; known, unknown, fixed,
// a Xen MAC) against each: every answer must agree.
func TestE2EISCClassesDifferential(t *testing.T) {
	need(t, "dhcpd", "udhcpc")
	pxeBIOS := []string{"-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000"}
	pxeX64 := []string{"-V", "PXEClient:Arch:00007:UNDI:003016", "-x", "0x5d:0007"}
	pxeEBC := []string{"-V", "PXEClient:Arch:00009:UNDI:003016", "-x", "0x5d:0009"}
	http := []string{"-V", "HTTPClient:Arch:00016", "-x", "0x5d:0010"}
	ipxe := append(append([]string{}, pxeX64...), "-x", "0x4d:69505845") // user class "iPXE"
	plain := []string{"-V", "plain"}
	clients := []classClient{
		{"known plain", "02:00:5e:00:53:01", plain, ""},
		{"known PXE x64", "02:00:5e:00:53:01", pxeX64, ""},
		{"unknown plain", "02:00:5e:00:53:10", plain, ""},
		{"unknown PXE BIOS", "02:00:5e:00:53:11", pxeBIOS, ""},
		{"unknown PXE x64", "02:00:5e:00:53:12", pxeX64, ""},
		{"unknown PXE EBC (subclass)", "02:00:5e:00:53:13", pxeEBC, ""},
		{"unknown UEFI HTTP", "02:00:5e:00:53:14", http, ""},
		{"unknown iPXE", "02:00:5e:00:53:15", ipxe, ""},
		{"known Xen MAC plain", "00:16:3e:00:53:02", plain, ""},
		{"unknown Xen MAC PXE", "00:16:3e:00:53:16", pxeBIOS, ""},
		{"fixed host plain", "02:00:5e:00:53:03", plain, ""},
		// ISC's own client, declaring option 93 and sending it.
		{"dhclient PXE x64", "02:00:5e:00:53:20", nil, dhclientSends("PXEClient:Arch:00007:UNDI:003016", 7)},
		{"dhclient UEFI HTTP", "02:00:5e:00:53:21", nil, dhclientSends("HTTPClient:Arch:00016", 16)},
		{"dhclient known EBC", "02:00:5e:00:53:01", nil, dhclientSends("EFI:Arch:00009", 9)},
	}
	l := newLab(t, "192.0.2.1/24")
	confPath := filepath.Join(l.dir, "dhcpd.conf")
	if err := os.WriteFile(confPath, []byte(classConf), 0o644); err != nil {
		t.Fatal(err)
	}
	ask := func(c classClient) classAnswer {
		l.setClientMAC(c.mac)
		l.in(l.cli, "ip", "addr", "flush", "dev", l.cif)
		if c.dhclient != "" {
			os.Remove(filepath.Join(l.dir, "dhclient.leases"))
			os.Remove(filepath.Join(l.dir, "dhclient-env.BOUND"))
			l.dhclientConf = c.dhclient
			env := l.dhclient(t)
			// Stop the daemon it became before the next client.
			l.try(l.cli, 10*time.Second, "sh", "-c", "kill $(cat "+filepath.Join(l.dir, "dhclient.pid")+")")
			next := env["new_next_server"]
			if next == "0.0.0.0" {
				next = ""
			}
			return classAnswer{pool: poolOf(env["new_ip_address"]), file: env["new_filename"], siaddr: next,
				sname: env["new_server_name"], vendor: env["new_vendor_class_identifier"]}
		}
		os.Remove(filepath.Join(l.dir, "udhcpc-env.bound"))
		env, _ := l.udhcpc(t, append([]string{"-O", "60", "-O", "66", "-O", "67"}, c.args...)...)
		if env == nil {
			return classAnswer{pool: "none"}
		}
		return classAnswer{pool: poolOf(env["ip"]), file: env["boot_file"], siaddr: env["siaddr"], sname: env["sname"], vendor: vendorOf(env)}
	}

	// ISC dhcpd first.
	leases := filepath.Join(l.dir, "dhcpd.leases")
	os.WriteFile(leases, nil, 0o644)
	cmd := exec.Command("ip", "netns", "exec", l.srv, "dhcpd", "-4", "-f", "-cf", confPath, "-lf", leases, "-pf", filepath.Join(l.dir, "dhcpd.pid"), l.sif)
	var dhcpdOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &dhcpdOut, &dhcpdOut
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
		}
	}
	t.Cleanup(stop)
	// dhcpd listens once it says so.
	for deadline := time.Now().Add(20 * time.Second); !strings.Contains(dhcpdOut.String(), "Sending on"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("ISC dhcpd did not start:\n%s", dhcpdOut.String())
		}
	}
	isc := make([]classAnswer, len(clients))
	for i, c := range clients {
		isc[i] = ask(c)
	}
	stop()

	// Then pxed, on the same file.
	conf, _ := os.ReadFile(confPath)
	srv := l.startPxed(string(conf), t.TempDir())
	ours := make([]classAnswer, len(clients))
	for i, c := range clients {
		ours[i] = ask(c)
	}

	var table strings.Builder
	fmt.Fprintf(&table, "%-27s %-6s %-68s %s\n", "client", "agree", "ISC dhcpd (pool file siaddr sname opt60)", "pxed")
	for i, c := range clients {
		// One deliberate difference: pxed echoes option 60 "PXEClient"
		// (with option 43 "no boot-server discovery") to PXE clients,
		// which ISC does only when the file says so. Where the file sets
		// option 60 (HTTPClient), both must send it.
		want := isc[i]
		if want.vendor == "" && c.pxe() {
			want.vendor = "PXEClient"
		}
		ok := want == ours[i]
		fmt.Fprintf(&table, "%-27s %-6v %-68s %s\n", c.name, ok, isc[i], ours[i])
		if !ok {
			t.Errorf("%s: ISC dhcpd answered %q, pxed %q", c.name, isc[i], ours[i])
		}
	}
	t.Logf("same dhcpd.conf, same clients:\n%s", table.String())
	if t.Failed() {
		t.Logf("dhcpd output:\n%s", dhcpdOut.String())
		t.Logf("pxed log:\n%s", srv.log.String())
	}
	// The configuration is not vacuous: the cases differ from each other.
	seen := map[classAnswer]bool{}
	for _, a := range isc {
		seen[a] = true
	}
	if len(seen) < 7 {
		t.Errorf("only %d distinct answers over %d clients: the test does not tell the cases apart", len(seen), len(clients))
	}

	// explain predicts the UEFI x64 client's answer from the same file.
	out, err := exec.Command(pxed(t), "explain", "--dhcpd-conf", confPath, "--state-dir", t.TempDir(), "02:00:5e:00:53:12").CombinedOutput()
	for _, want := range []string{
		`UEFI x64: class pxeclients matched: option vendor-class-identifier "PXEClient:Arch:00007:UNDI:003016"`,
		"UEFI x64: " + confPath + `:37:3: if option arch = 00:07: true → filename "ipxe.efi"`,
		"boot file for UEFI x64: ipxe.efi",
		"BIOS PXE: " + confPath + `:41:5: else → filename "undionly.kpxe"`,
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("pxed explain (%v) lacks %q:\n%s", err, want, out)
		}
	}
}

// dhclientSends is dhclient.conf sending vendor class vc and, declared
// first, option 93 arch.
func dhclientSends(vc string, arch int) string {
	return fmt.Sprintf("option arch code 93 = unsigned integer 16;\nsend arch %d;\nsend vendor-class-identifier %q;\nalso request vendor-class-identifier;\n", arch, vc)
}

// vendorOf is option 60 of the reply as udhcpc's script saw it (busybox
// exports options it has no name for as optNN, in hex).
func vendorOf(env map[string]string) string {
	if v, ok := env["opt60"]; ok {
		b := make([]byte, 0, len(v)/2)
		for i := 0; i+1 < len(v); i += 2 {
			var c byte
			fmt.Sscanf(v[i:i+2], "%02x", &c)
			b = append(b, c)
		}
		return string(b)
	}
	return env["vendor"]
}
