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
