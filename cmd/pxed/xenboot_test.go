package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// xenRun is one libxl-style run: the output file and directory libxl makes
// (root's, mode 0600, as libxl_bootloader.c creates them), and the MAC.
type xenRun struct {
	out, outDir, mac string
}

func newXenRun(t *testing.T, mac string) xenRun {
	t.Helper()
	dir := t.TempDir()
	r := xenRun{out: filepath.Join(dir, "bootloader.7.out"), outDir: filepath.Join(dir, "bootloader.7.d"), mac: mac}
	if err := os.Mkdir(r.outDir, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(r.out, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return r
}

// config is the name PXELINUX asks for first for the run's MAC.
func (r xenRun) config() string {
	return "pxelinux.cfg/01-" + strings.ReplaceAll(r.mac, ":", "-")
}

// args is libxl's command line (make_bootloader_args): runas and quiet
// when restricted, output, format, directory, bootloader_args, the disk.
func (r xenRun) args(runas string, extra ...string) []string {
	var a []string
	if runas != "" {
		a = append(a, "--runas="+runas, "--quiet")
	}
	a = append(a, "--output="+r.out, "--output-format=simple0", "--output-directory="+r.outDir)
	a = append(a, extra...)
	return append(a, "mac="+r.mac+",bridge=xb0", "/dev/xvda-image")
}

// result reads the output file as libxl does (NUL-separated items).
func (r xenRun) result(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(r.out)
	if err != nil {
		t.Fatal(err)
	}
	res := map[string]string{}
	for _, item := range bytes.Split(b, []byte{0}) {
		if k, v, ok := strings.Cut(string(item), " "); ok {
			res[k] = v
		}
	}
	return res
}

// unusedUID is a uid with no passwd entry (so its group is the same
// number), as libxl's range of restricted users is.
func unusedUID(t *testing.T) string {
	for uid := 64123; uid < 64200; uid++ {
		if _, err := user.LookupId(strconv.Itoa(uid)); err != nil {
			return strconv.Itoa(uid)
		}
	}
	t.Fatal("no unused uid")
	return ""
}

// checkDropped fails unless every process is uid/gid id in all four
// fields, with no supplementary group, no capability and no_new_privs.
func checkDropped(t *testing.T, what string, ps []procInfo, id string) {
	t.Helper()
	if len(ps) == 0 {
		t.Errorf("%s: no process found holding the socket the request came from", what)
	}
	const zero = "0000000000000000"
	for _, p := range ps {
		ok := len(p.Uid) == 4 && len(p.Gid) == 4 && len(p.Groups) == 0 && p.NoNew == "1" &&
			p.CapInh == zero && p.CapPrm == zero && p.CapEff == zero && p.CapAmb == zero
		for i := 0; ok && i < 4; i++ {
			ok = p.Uid[i] == id && p.Gid[i] == id
		}
		if !ok {
			t.Errorf("%s came from %s; want uid and gid %s, no groups, no capabilities, no_new_privs", what, p, id)
		} else {
			t.Logf("%s came from %s", what, p)
		}
	}
}

// The guest config says bootloader_restrict: libxl passes --runas=UID.
// Every request on the network (the DHCP DISCOVER, each TFTP and HTTP
// request) comes from a process that is that uid and group in all four
// fields, with no supplementary groups, no capabilities and no_new_privs,
// and is the only holder of its socket; the kernel and ramdisk still land
// in libxl's root-only directory. A LOCALBOOT guest's local bootloader gets
// --runas (and --quiet) as libxl would give it, started as root as libxl
// starts a bootloader, since pygrub restricts itself (namespaces, chroot,
// then setuid: all need root).
func TestXenbootRunAs(t *testing.T) {
	n := newXenNet(t)
	bin := buildPxed(t)
	uid := unusedUID(t)

	t.Run("network part dropped", func(t *testing.T) {
		r := newXenRun(t, "02:00:5e:00:53:01")
		kernel, i1, i2 := bytes.Repeat([]byte("K"), 3000), bytes.Repeat([]byte("1"), 1500), []byte("second initrd")
		n.mu.Lock()
		n.tftp[r.config()] = tftpFile{data: []byte("default l\nlabel l\nkernel vmlinuz\nappend initrd=i1.img,http://192.0.2.1:8080/i2.img console=hvc0\n")}
		n.tftp["vmlinuz"] = tftpFile{data: kernel}
		n.tftp["i1.img"] = tftpFile{data: i1}
		n.http["/i2.img"] = func(w http.ResponseWriter, _ *http.Request) { w.Write(i2) }
		n.mu.Unlock()
		stderr, code, _ := n.bootloader(bin, nil, 60*time.Second, "", r.args(uid)...)
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, stderr)
		}
		res := r.result(t)
		for key, want := range map[string][]byte{"kernel": kernel, "ramdisk": append(append([]byte(nil), i1...), i2...)} {
			p := res[key]
			if filepath.Dir(p) != r.outDir {
				t.Fatalf("%s %q not in %s (result %v)", key, p, r.outDir, res)
			}
			if got, _ := os.ReadFile(p); !bytes.Equal(got, want) {
				t.Errorf("%s: %d bytes, want the %d served", key, len(got), len(want))
			}
			fi, _ := os.Stat(p)
			if st := fi.Sys().(*syscall.Stat_t); st.Uid != 0 || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: owner %d mode %v, want root's 0600", key, st.Uid, fi.Mode().Perm())
			}
		}
		if res["args"] != "console=hvc0" {
			t.Errorf("args %q", res["args"])
		}
		for _, key := range []string{"dhcp", "tftp " + r.config(), "tftp vmlinuz", "tftp i1.img", "http /i2.img"} {
			checkDropped(t, key, n.sendersOf(key), uid)
		}
	})

	t.Run("localboot", func(t *testing.T) {
		r := newXenRun(t, "02:00:5e:00:53:02")
		n.mu.Lock()
		n.tftp[r.config()] = tftpFile{data: []byte("default disk\nlabel disk\nlocalboot 0\n")}
		n.mu.Unlock()
		record := filepath.Join(t.TempDir(), "pygrub.record")
		pygrub := filepath.Join(t.TempDir(), "pygrub")
		script := "#!/bin/sh\n{ id -u; id -g; for a in \"$@\"; do echo \"$a\"; done; } > " + record + "\n" +
			"printf 'kernel /boot/vmlinuz\\0args root=/dev/xvda1\\0' > " + r.out + "\n"
		if err := os.WriteFile(pygrub, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		stderr, code, _ := n.bootloader(bin, nil, 60*time.Second, "", r.args(uid, "--local-bootloader="+pygrub)...)
		if code != 0 {
			t.Fatalf("exit %d:\n%s", code, stderr)
		}
		got, _ := os.ReadFile(record)
		want := strings.Join([]string{"0", "0", "--runas=" + uid, "--quiet", "--output=" + r.out, "--output-format=simple0",
			"--output-directory=" + r.outDir, "/dev/xvda-image"}, "\n") + "\n"
		if string(got) != want {
			t.Errorf("the local bootloader recorded (uid, gid, argv)\n%s\nwant\n%s", got, want)
		}
		if res := r.result(t); res["kernel"] != "/boot/vmlinuz" {
			t.Errorf("output %v", res)
		}
		if ents, _ := os.ReadDir(r.outDir); len(ents) != 0 {
			t.Errorf("pxed left %v in the output directory", ents)
		}
		checkDropped(t, "dhcp", n.sendersOf("dhcp"), uid)
		checkDropped(t, "tftp "+r.config(), n.sendersOf("tftp "+r.config()), uid)
	})
}

// Hostile boot servers and configs, each replayed against the bootloader
// (as root and restricted) with HTTP_PROXY and friends pointing at a
// listener that must see no connection: a body or a TFTP transfer that
// goes on past the limit, a TFTP tsize or an HTTP Content-Length over it,
// initrds over it together, a config over it, a redirect to another host,
// a config naming another host (HTTP and TFTP). Each fails with the file
// and the limit or host named, nothing larger than the limit is ever seen
// in the output directory, which is empty afterwards, and the other host
// sees no request. Controls: --allow-host, a same-host redirect and
// --use-env-proxy do what they say.
func TestXenbootHostileServers(t *testing.T) {
	n := newXenNet(t)
	bin := buildPxed(t)
	uid := unusedUID(t)
	const (
		kernelMax = 1 << 20
		initrdMax = 2 << 20
		configMax = 4 << 10
	)
	limits := []string{"--timeout=20s", fmt.Sprintf("--max-kernel-size=%d", kernelMax),
		fmt.Sprintf("--max-initrd-size=%d", initrdMax), fmt.Sprintf("--max-config-size=%d", configMax)}
	proxy := []string{"HTTP_PROXY=http://192.0.2.1:3128", "HTTPS_PROXY=http://192.0.2.1:3128",
		"http_proxy=http://192.0.2.1:3128", "https_proxy=http://192.0.2.1:3128"}
	n.mu.Lock()
	n.tftp["vmlinuz"] = tftpFile{data: bytes.Repeat([]byte("K"), 2000)}
	n.tftp["endless"] = tftpFile{stall: kernelMax + 1<<20}
	n.tftp["big"] = tftpFile{stall: kernelMax + 1<<20, tsize: 100 << 20}
	n.tftp["half.img"] = tftpFile{data: bytes.Repeat([]byte("I"), initrdMax*3/4)}
	n.http["/vmlinuz"] = func(w http.ResponseWriter, _ *http.Request) { w.Write(bytes.Repeat([]byte("K"), 2000)) }
	n.http["/endless"] = slowBody(kernelMax + 1<<20)
	n.http["/announced"] = func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(100<<20))
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}
	n.http["/redirect-other"] = func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://198.51.100.1:8080/vmlinuz", http.StatusFound)
	}
	n.http["/redirect-same"] = func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/vmlinuz", http.StatusFound)
	}
	n.mu.Unlock()
	bigConfig := "default l\nlabel l\nkernel vmlinuz\n" + strings.Repeat("# padding to go over the limit\n", 2*configMax/30)

	for i, tc := range []struct {
		name    string
		config  string // the label's lines after "label l"
		extra   []string
		wantErr []string // "" config: the bootloader must succeed
		other   int32    // requests the other host must get
		proxy   int32    // connections the proxy must get (at least)
		noData  bool     // the TFTP stand-in must send no data of "big"
	}{
		{name: "http body past the kernel limit", config: "kernel http://192.0.2.1:8080/endless",
			wantErr: []string{"kernel http://192.0.2.1:8080/endless", "file too large", fmt.Sprintf("--max-kernel-size=%d", kernelMax)}},
		{name: "tftp data past the kernel limit", config: "kernel endless",
			wantErr: []string{"kernel endless", "file too large", fmt.Sprintf("--max-kernel-size=%d", kernelMax)}},
		{name: "tftp tsize over the kernel limit", config: "kernel big", noData: true,
			wantErr: []string{"kernel big", "file too large", fmt.Sprintf("--max-kernel-size=%d", kernelMax)}},
		{name: "http length over the kernel limit", config: "kernel http://192.0.2.1:8080/announced",
			wantErr: []string{"announced 104857600 bytes", fmt.Sprintf("--max-kernel-size=%d", kernelMax)}},
		{name: "initrds over the limit together", config: "kernel vmlinuz\ninitrd half.img,half.img",
			wantErr: []string{"initrd half.img,half.img", fmt.Sprintf("--max-initrd-size=%d", initrdMax), "all initrds together"}},
		{name: "config over the limit", config: "-",
			wantErr: []string{"pxelinux.cfg/01-02-00-5e-00-53-", "file too large", fmt.Sprint(configMax)}},
		{name: "redirect to another host", config: "kernel http://192.0.2.1:8080/redirect-other",
			wantErr: []string{"kernel http://192.0.2.1:8080/redirect-other", "redirect from 192.0.2.1:8080 to another host, 198.51.100.1:8080"}},
		{name: "http URL on another host", config: "kernel http://198.51.100.1:8080/vmlinuz",
			wantErr: []string{"kernel http://198.51.100.1:8080/vmlinuz", "198.51.100.1 is not the boot server", "--allow-host"}},
		{name: "tftp URL on another host", config: "kernel tftp://198.51.100.1/vmlinuz",
			wantErr: []string{"kernel tftp://198.51.100.1/vmlinuz", "198.51.100.1 is not the boot server"}},
		{name: "control: another host allowed", config: "kernel http://198.51.100.1:8080/vmlinuz",
			extra: []string{"--allow-host=198.51.100.1"}, other: 1},
		{name: "control: redirect on the same host", config: "kernel http://192.0.2.1:8080/redirect-same"},
		{name: "control: the proxy when asked", config: "kernel http://192.0.2.1:8080/vmlinuz",
			extra: []string{"--use-env-proxy"}, wantErr: []string{"kernel http://192.0.2.1:8080/vmlinuz"}, proxy: 1},
	} {
		for _, runas := range []string{"", uid} {
			mode := "root"
			if runas != "" {
				mode = "runas"
			}
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				r := newXenRun(t, fmt.Sprintf("02:00:5e:00:53:%02x", 0x10+i))
				cfg := "default l\nlabel l\n" + tc.config + "\n"
				if tc.config == "-" {
					cfg = bigConfig
				}
				n.mu.Lock()
				n.tftp[r.config()] = tftpFile{data: []byte(cfg)}
				n.mu.Unlock()
				other, proxied, sent := n.other.Load(), n.proxy.Load(), n.tftpSent("big")
				args := r.args(runas, append(append([]string(nil), limits...), tc.extra...)...)
				stderr, code, largest := n.bootloader(bin, proxy, 60*time.Second, r.outDir, args...)
				if tc.wantErr == nil {
					if code != 0 {
						t.Fatalf("exit %d:\n%s", code, stderr)
					}
				} else {
					if code == 0 {
						t.Fatalf("exit 0, want a failure naming %q:\n%s", tc.wantErr, stderr)
					}
					for _, w := range tc.wantErr {
						if !strings.Contains(stderr, w) {
							t.Errorf("error lacks %q:\n%s", w, stderr)
						}
					}
					if data, _ := os.ReadFile(r.out); len(data) != 0 {
						t.Errorf("output after a failure: %q", data)
					}
					if ents, _ := os.ReadDir(r.outDir); len(ents) != 0 {
						t.Errorf("files left in the output directory: %v", ents)
					}
				}
				if largest > initrdMax || (!strings.Contains(tc.config, "initrd") && largest > kernelMax) {
					t.Errorf("a file of %d bytes was written, over the limit", largest)
				}
				if got := n.other.Load() - other; got != tc.other {
					t.Errorf("the other host got %d requests, want %d", got, tc.other)
				}
				if got := n.proxy.Load() - proxied; got < tc.proxy || (tc.proxy == 0 && got != 0) {
					t.Errorf("the proxy got %d connections, want %d", got, tc.proxy)
				}
				if got := n.tftpSent("big") - sent; tc.noData && got != 0 {
					t.Errorf("the TFTP server sent %d bytes of a file refused by its tsize", got)
				}
			})
		}
	}
}

// The worker refuses to touch the network unless it has dropped: this test
// process (root with capabilities, or a user without no_new_privs) is not
// restricted to any uid.
func TestCheckRestrictedRefuses(t *testing.T) {
	for _, uid := range []uint32{0, uint32(os.Getuid()), 64123} {
		if err := checkRestricted(uid); err == nil {
			t.Errorf("checkRestricted(%d) accepted this process", uid)
		}
	}
}

func TestRunAsIDs(t *testing.T) {
	if _, _, err := runAsIDs("0"); err == nil {
		t.Error("--runas=0 accepted")
	}
	uid := unusedUID(t)
	if u, g, err := runAsIDs(uid); err != nil || strconv.Itoa(int(u)) != uid || g != u {
		t.Errorf("runAsIDs(%s) = %d, %d, %v; want the uid as its own group", uid, u, g, err)
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	u, g, err := runAsIDs(nobody.Uid)
	if err != nil || strconv.Itoa(int(u)) != nobody.Uid || strconv.Itoa(int(g)) != nobody.Gid {
		t.Errorf("runAsIDs(%s) = %d, %d, %v; want nobody's uid %s and group %s", nobody.Uid, u, g, err, nobody.Uid, nobody.Gid)
	}
}
