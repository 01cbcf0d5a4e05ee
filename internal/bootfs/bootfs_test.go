package bootfs

import (
	"errors"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestCleanName(t *testing.T) {
	tests := []struct {
		name, root string
		want       string
	}{
		{"pxelinux.0", "", "pxelinux.0"},
		{"/pxelinux.0", "", "pxelinux.0"},
		{"//pxelinux.0", "", "pxelinux.0"},
		{`\boot\x.c32`, "", "boot/x.c32"},
		{`boot\efi/grubx64.efi`, "", "boot/efi/grubx64.efi"},
		{"a/./b", "", "a/b"},
		{"./a", "", "a"},
		{"a//b", "", "a/b"},
		{"a/b/", "", "a/b"},
		{"/", "", "."},
		{".", "", "."},
		{"...", "", "..."},
		{"a/..b", "", "a/..b"},
		{"..a/b", "", "..a/b"},
		{"pxelinux.cfg/01-aa-bb-cc-dd-ee-ff", "", "pxelinux.cfg/01-aa-bb-cc-dd-ee-ff"},
		{"with space", "", "with space"},
		{"café/Grüße.cfg", "", "café/Grüße.cfg"},

		// An absolute name under the tree's own directory is taken relative to it.
		{"/tftpboot/pxelinux.0", "/tftpboot", "pxelinux.0"},
		{"/tftpboot/boot/x.c32", "/tftpboot", "boot/x.c32"},
		{`\tftpboot\boot\x.c32`, "/tftpboot", "boot/x.c32"},
		{"/tftpboot/pxelinux.0", "/tftpboot/", "pxelinux.0"},
		{"//tftpboot//pxelinux.0", "/tftpboot", "pxelinux.0"},
		{"/srv/tftp/pxelinux.0", "/srv/tftp", "pxelinux.0"},
		// ... but only an absolute one, and only at a path-element boundary.
		{"tftpboot/pxelinux.0", "/tftpboot", "tftpboot/pxelinux.0"},
		{"/tftpbootx/pxelinux.0", "/tftpboot", "tftpbootx/pxelinux.0"},
		{"/srv/pxelinux.0", "/srv/tftp", "srv/pxelinux.0"},
		{"/other/pxelinux.0", "/tftpboot", "other/pxelinux.0"},
		// A root of "/" strips nothing.
		{"/pxelinux.0", "/", "pxelinux.0"},
		{"/boot/x", "/", "boot/x"},
	}
	for _, tt := range tests {
		got, err := CleanName(tt.name, tt.root)
		if err != nil {
			t.Errorf("CleanName(%q, %q): unexpected error %v", tt.name, tt.root, err)
			continue
		}
		if got != tt.want {
			t.Errorf("CleanName(%q, %q) = %q, want %q", tt.name, tt.root, got, tt.want)
		}
		if !fs.ValidPath(got) {
			t.Errorf("CleanName(%q, %q) = %q, which is not a valid fs path", tt.name, tt.root, got)
		}
	}
}

func TestCleanNameRefused(t *testing.T) {
	tests := []struct {
		name, root string
		reason     string // substring of DeniedError.Reason
	}{
		{"", "", "empty"},
		{"..", "", `".."`},
		{"../etc/passwd", "", `".."`},
		{"/../etc/passwd", "", `".."`},
		{"a/../b", "", `".."`},
		{"a/..", "", `".."`},
		{`..\windows`, "", `".."`},
		{`a\..\b`, "", `".."`},
		{"/tftpboot/../etc/passwd", "/tftpboot", `".."`},
		{"a\x00b", "", "control byte 0x00"},
		{"pxelinux.0\x00", "", "control byte 0x00"},
		{"a\nb", "", "control byte 0x0a"},
		{"a\rb", "", "control byte 0x0d"},
		{"a\tb", "", "control byte 0x09"},
		{"\x1b[31m", "", "control byte 0x1b"},
		{"a\x7fb", "", "control byte 0x7f"},
		{"\xff", "", "UTF-8"},
		{"caf\xe9.cfg", "", "UTF-8"},
	}
	for _, tt := range tests {
		got, err := CleanName(tt.name, tt.root)
		if err == nil {
			t.Errorf("CleanName(%q, %q) = %q, want an error", tt.name, tt.root, got)
			continue
		}
		var de *DeniedError
		if !errors.As(err, &de) {
			t.Errorf("CleanName(%q, %q): error %v (%T) is not a *DeniedError", tt.name, tt.root, err, err)
			continue
		}
		if !errors.Is(err, fs.ErrPermission) {
			t.Errorf("CleanName(%q, %q): error %v does not wrap fs.ErrPermission", tt.name, tt.root, err)
		}
		if de.Name != tt.name {
			t.Errorf("CleanName(%q, %q): DeniedError.Name = %q, want the name as sent", tt.name, tt.root, de.Name)
		}
		if !strings.Contains(de.Reason, tt.reason) {
			t.Errorf("CleanName(%q, %q): reason %q does not mention %q", tt.name, tt.root, de.Reason, tt.reason)
		}
	}
}

func FuzzCleanName(f *testing.F) {
	for _, s := range []struct{ name, root string }{
		{"pxelinux.0", ""},
		{"/pxelinux.0", "/tftpboot"},
		{"/tftpboot/pxelinux.0", "/tftpboot"},
		{`\boot\x.c32`, ""},
		{"a/./b//c/", ""},
		{"a/../b", ""},
		{"..", "/"},
		{"/srv/tftp/../x", "/srv/tftp"},
		{"a\x00b", ""},
		{"", ""},
		{"...", "a/.."},
	} {
		f.Add(s.name, s.root)
	}
	f.Fuzz(func(t *testing.T, name, root string) {
		got, err := CleanName(name, root)
		if err != nil {
			var de *DeniedError
			if !errors.As(err, &de) || !errors.Is(err, fs.ErrPermission) {
				t.Fatalf("CleanName(%q, %q): error %v (%T) is not a *DeniedError wrapping fs.ErrPermission", name, root, err, err)
			}
			if got != "" {
				t.Fatalf("CleanName(%q, %q) returned %q along with error %v", name, root, got, err)
			}
			return
		}
		if !fs.ValidPath(got) {
			t.Fatalf("CleanName(%q, %q) = %q, not fs.ValidPath", name, root, got)
		}
		for _, elem := range strings.Split(got, "/") {
			if elem == ".." {
				t.Fatalf("CleanName(%q, %q) = %q, has a \"..\" element", name, root, got)
			}
		}
		if strings.ContainsAny(got, `\`) {
			t.Fatalf("CleanName(%q, %q) = %q, still has a backslash", name, root, got)
		}
		for i := 0; i < len(got); i++ {
			if c := got[i]; c < 0x20 || c == 0x7f {
				t.Fatalf("CleanName(%q, %q) = %q, has control byte 0x%02x", name, root, got, c)
			}
		}
		// Cleaning is idempotent: a clean relative name stays as it is.
		if again, err := CleanName(got, ""); err != nil || again != got {
			t.Fatalf("CleanName(%q, \"\") = %q, %v; want %q unchanged", got, again, err, got)
		}
	})
}

// newTree makes a boot tree in a temporary directory and returns it with the
// directory's path. The tree is closed when the test ends.
func newTree(t *testing.T) (*Tree, string) {
	t.Helper()
	dir := t.TempDir()
	tree, err := Open(dir)
	if err != nil {
		t.Fatalf("Open(%q): %v", dir, err)
	}
	t.Cleanup(func() { tree.Close() })
	return tree, dir
}

func writeFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	// WriteFile's mode is subject to the umask; set it exactly.
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestOpenAndDir(t *testing.T) {
	tree, dir := newTree(t)
	if !filepath.IsAbs(tree.Dir()) {
		t.Errorf("Dir() = %q, want an absolute path", tree.Dir())
	}
	if tree.Dir() != dir {
		t.Errorf("Dir() = %q, want %q", tree.Dir(), dir)
	}
	if _, err := Open(filepath.Join(dir, "missing")); err == nil {
		t.Error("Open of a missing directory succeeded")
	}
	writeFile(t, filepath.Join(dir, "file"), "x", 0o644)
	if _, err := Open(filepath.Join(dir, "file")); err == nil {
		t.Error("Open of a regular file as a tree succeeded")
	}
}

func TestOpenRelativeDir(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "boot", "pxelinux.0"), "pxe", 0o644)
	t.Chdir(dir)
	tree, err := Open("boot")
	if err != nil {
		t.Fatal(err)
	}
	defer tree.Close()
	want := filepath.Join(dir, "boot")
	if tree.Dir() != want {
		t.Errorf("Dir() = %q, want %q", tree.Dir(), want)
	}
	// The absolute-name compatibility uses the absolute path.
	if got := readAll(t, tree, want+"/pxelinux.0"); got != "pxe" {
		t.Errorf("read %q, want %q", got, "pxe")
	}
}

func readAll(t *testing.T, tree *Tree, name string) string {
	t.Helper()
	f, err := tree.Open(name)
	if err != nil {
		t.Fatalf("Open(%q): %v", name, err)
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("reading %q: %v", name, err)
	}
	return string(b)
}

func TestTreeServesWorldReadableFiles(t *testing.T) {
	tree, dir := newTree(t)
	writeFile(t, filepath.Join(dir, "pxelinux.0"), "pxelinux", 0o644)
	writeFile(t, filepath.Join(dir, "boot", "x.c32"), "c32 module", 0o444)
	writeFile(t, filepath.Join(dir, "only-other"), "odd but readable", 0o004)

	for name, want := range map[string]string{
		"pxelinux.0":        "pxelinux",
		"/pxelinux.0":       "pxelinux",
		`\boot\x.c32`:       "c32 module",
		"boot//./x.c32":     "c32 module",
		dir + "/pxelinux.0": "pxelinux",
		dir + "/boot/x.c32": "c32 module",
		"only-other":        "odd but readable",
	} {
		if got := readAll(t, tree, name); got != want {
			t.Errorf("Open(%q) read %q, want %q", name, got, want)
		}
		fi, err := tree.Stat(name)
		if err != nil {
			t.Errorf("Stat(%q): %v", name, err)
			continue
		}
		if fi.Size() != int64(len(want)) || !fi.Mode().IsRegular() {
			t.Errorf("Stat(%q) = size %d mode %v, want size %d, regular", name, fi.Size(), fi.Mode(), len(want))
		}
	}

	// Files are *os.File, so the TFTP server can use ReadAt.
	f, err := tree.Open("pxelinux.0")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ra, ok := f.(io.ReaderAt)
	if !ok {
		t.Fatalf("Open returned %T, which is not an io.ReaderAt", f)
	}
	buf := make([]byte, 3)
	if _, err := ra.ReadAt(buf, 3); err != nil || string(buf) != "lin" {
		t.Errorf("ReadAt(3) = %q, %v; want %q", buf, err, "lin")
	}

	// Tree is an fs.StatFS.
	var _ fs.StatFS = tree
	if fi, err := fs.Stat(tree, "boot/x.c32"); err != nil || fi.Size() != int64(len("c32 module")) {
		t.Errorf("fs.Stat = %v, %v", fi, err)
	}
}

// wantDenied checks that err is a *DeniedError wrapping fs.ErrPermission
// whose reason mentions reason.
func wantDenied(t *testing.T, op, name string, err error, reason string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s(%q) succeeded, want it refused", op, name)
		return
	}
	var de *DeniedError
	if !errors.As(err, &de) {
		t.Errorf("%s(%q): error %v (%T) is not a *DeniedError", op, name, err, err)
		return
	}
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("%s(%q): error %v does not wrap fs.ErrPermission", op, name, err)
	}
	if errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s(%q): error %v also says not-exist", op, name, err)
	}
	if !strings.Contains(de.Reason, reason) {
		t.Errorf("%s(%q): reason %q does not mention %q", op, name, de.Reason, reason)
	}
	if de.Name != name {
		t.Errorf("%s(%q): DeniedError.Name = %q, want the name as requested", op, name, de.Name)
	}
	if !strings.Contains(err.Error(), de.Reason) {
		t.Errorf("%s(%q): Error() = %q does not include the reason", op, name, err.Error())
	}
}

func wantNotExist(t *testing.T, op, name string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s(%q) succeeded, want not-exist", op, name)
		return
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s(%q): error %v does not wrap fs.ErrNotExist", op, name, err)
	}
	if errors.Is(err, fs.ErrPermission) {
		t.Errorf("%s(%q): error %v also says permission", op, name, err)
	}
}

// both runs Open and Stat on name and hands each error to check.
func both(t *testing.T, tree *Tree, name string, check func(op string, err error)) {
	t.Helper()
	f, err := tree.Open(name)
	if err == nil {
		f.Close()
	}
	check("Open", err)
	_, err = tree.Stat(name)
	check("Stat", err)
}

func TestTreeRefusesUnreadableFiles(t *testing.T) {
	tree, dir := newTree(t)
	for _, mode := range []os.FileMode{0o600, 0o640, 0o660, 0o000, 0o711} {
		name := "secret-" + mode.String()
		writeFile(t, filepath.Join(dir, name), "secret", mode)
		both(t, tree, name, func(op string, err error) {
			t.Helper()
			wantDenied(t, op, name, err, "world-readable")
		})
	}
}

func TestTreeDeniedErrorNamesRequest(t *testing.T) {
	tree, dir := newTree(t)
	writeFile(t, filepath.Join(dir, "boot", "secret"), "secret", 0o600)
	for _, name := range []string{`\boot\secret`, "/boot/secret", dir + "/boot/secret", "boot/./secret"} {
		both(t, tree, name, func(op string, err error) {
			t.Helper()
			wantDenied(t, op, name, err, "world-readable")
		})
	}
}

func TestTreeDirectoryIsNotFound(t *testing.T) {
	tree, dir := newTree(t)
	writeFile(t, filepath.Join(dir, "boot", "x"), "x", 0o644)
	for _, name := range []string{"boot", "/boot/", ".", "/", dir, dir + "/boot"} {
		both(t, tree, name, func(op string, err error) {
			t.Helper()
			wantNotExist(t, op, name, err)
		})
	}
}

func TestTreeMissingIsNotFound(t *testing.T) {
	tree, dir := newTree(t)
	writeFile(t, filepath.Join(dir, "boot", "x"), "x", 0o644)
	// A name that goes through a regular file (ENOTDIR) names nothing.
	for _, name := range []string{"missing", "boot/missing", "/missing/deeper", "boot/x/under-a-file"} {
		both(t, tree, name, func(op string, err error) {
			t.Helper()
			wantNotExist(t, op, name, err)
		})
	}
}

func TestTreeRefusesBadNames(t *testing.T) {
	tree, dir := newTree(t)
	writeFile(t, filepath.Join(dir, "a"), "a", 0o644)
	for _, name := range []string{"", "..", "../a", "x/../a", "a\x00", "a\n"} {
		both(t, tree, name, func(op string, err error) {
			t.Helper()
			var de *DeniedError
			if !errors.As(err, &de) || !errors.Is(err, fs.ErrPermission) {
				t.Errorf("%s(%q) = %v, want a *DeniedError", op, name, err)
			}
		})
	}
}

func TestTreeSymlinks(t *testing.T) {
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "passwd"), "root:x:0:0", 0o644)
	tree, dir := newTree(t)
	writeFile(t, filepath.Join(dir, "boot", "vmlinuz-6.1"), "kernel", 0o644)
	writeFile(t, filepath.Join(dir, "inside"), "inside", 0o644)
	writeFile(t, filepath.Join(dir, "private"), "private", 0o600)

	links := map[string]string{
		"vmlinuz":          "boot/vmlinuz-6.1",
		"boot/current":     "vmlinuz-6.1",
		"boot/up":          "../inside",
		"chain":            "vmlinuz",
		"boot-link":        "boot",
		"escape":           "../" + filepath.Base(outside) + "/passwd",
		"escape-deep":      "boot/../../" + filepath.Base(outside) + "/passwd",
		"boot/escape":      "../../" + filepath.Base(outside) + "/passwd",
		"absolute":         filepath.Join(outside, "passwd"),
		"absolute-inside":  filepath.Join(dir, "inside"),
		"dangling":         "no-such-file",
		"to-private":       "private",
		"escape-dir":       "..",
		"escape-dir-chain": "boot-link/../..",
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}

	for name, want := range map[string]string{
		"vmlinuz":                "kernel",
		"boot/current":           "kernel",
		"boot/up":                "inside",
		"chain":                  "kernel",
		"boot-link/vmlinuz-6.1":  "kernel",
		"/boot-link/vmlinuz-6.1": "kernel",
	} {
		if got := readAll(t, tree, name); got != want {
			t.Errorf("Open(%q) read %q, want %q", name, got, want)
		}
		if _, err := tree.Stat(name); err != nil {
			t.Errorf("Stat(%q): %v", name, err)
		}
	}

	for _, name := range []string{"escape", "escape-deep", "boot/escape", "escape-dir/x", "escape-dir-chain/x"} {
		both(t, tree, name, func(op string, err error) {
			t.Helper()
			wantDenied(t, op, name, err, "outside the boot tree")
		})
	}
	// Absolute symlinks are refused even when they point into the tree: the
	// tree may be moved, and os.Root treats them as escapes.
	for _, name := range []string{"absolute", "absolute-inside"} {
		both(t, tree, name, func(op string, err error) {
			t.Helper()
			wantDenied(t, op, name, err, "outside the boot tree")
		})
	}
	both(t, tree, "dangling", func(op string, err error) {
		t.Helper()
		wantNotExist(t, op, "dangling", err)
	})
	// The world-readable rule applies to the link's target.
	both(t, tree, "to-private", func(op string, err error) {
		t.Helper()
		wantDenied(t, op, "to-private", err, "world-readable")
	})
}

func TestTreeRefusesNonRegularFiles(t *testing.T) {
	tree, dir := newTree(t)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	if err := os.Chmod(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("fifo", filepath.Join(dir, "to-fifo")); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"fifo", "to-fifo"} {
		// Opening a FIFO for reading blocks until a writer appears, so a
		// Tree that opened it before checking would hang here. Run it in a
		// goroutine so that a regression fails instead of hanging the run.
		done := make(chan error, 1)
		go func() {
			f, err := tree.Open(name)
			if err == nil {
				f.Close()
			}
			done <- err
		}()
		select {
		case err := <-done:
			wantDenied(t, "Open", name, err, "not a regular file")
		case <-time.After(10 * time.Second):
			// Unblock the goroutine so the test can finish.
			if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
				w.Close()
			}
			t.Errorf("Open(%q) blocked on a FIFO instead of refusing it", name)
		}
		_, err := tree.Stat(name)
		wantDenied(t, "Stat", name, err, "not a regular file")
	}

	// A Unix socket is not a regular file either.
	sock := filepath.Join(dir, "sock")
	if l, err := net.Listen("unix", sock); err == nil {
		defer l.Close()
		os.Chmod(sock, 0o777)
		both(t, tree, "sock", func(op string, err error) {
			t.Helper()
			if err == nil {
				t.Errorf("%s(%q) of a socket succeeded", op, "sock")
				return
			}
			if !errors.Is(err, fs.ErrPermission) && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s(%q) = %v, want refused", op, "sock", err)
			}
		})
	}

	// /dev/null is a character device, world-readable, and must not be served
	// even through a symlink inside the tree: the link leaves the tree.
	if err := os.Symlink("/dev/null", filepath.Join(dir, "null")); err != nil {
		t.Fatal(err)
	}
	both(t, tree, "null", func(op string, err error) {
		t.Helper()
		wantDenied(t, op, "null", err, "outside the boot tree")
	})
}
