// Package bootfs is the file tree that pxed's TFTP and HTTP front ends serve.
//
// A Tree confines every lookup to one directory on disk (a jail, in the sense of
// tftp-hpa's --secure): request names are cleaned the way network boot clients
// need (PXELINUX's leading "/", Windows "\"), names that try to leave the root
// are refused, symbolic links may not resolve outside it, and files that are not
// world-readable are refused, as tftp-hpa does. Both front ends take an io/fs.FS
// so that later layers (generated PXELINUX configs, iPXE scripts) can sit on top.
package bootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"unicode/utf8"
)

// DeniedError says why a request name or file was refused. It wraps
// fs.ErrPermission, so errors.Is(err, fs.ErrPermission) reports true.
type DeniedError struct {
	Name   string // the name as the client sent it
	Reason string // why it was refused, for the log line
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("%q refused: %s", e.Name, e.Reason)
}

func (e *DeniedError) Unwrap() error { return fs.ErrPermission }

// CleanName turns a name from a TFTP or HTTP request into a clean fs.FS path
// relative to the root of the tree.
//
// Backslashes become slashes and leading slashes are dropped, so "/pxelinux.0"
// and "\boot\x.c32" name files inside the root, as PXELINUX and Windows clients
// expect. When root (the absolute on-disk path of the tree) is not empty, a name
// that starts with it is taken relative to it, so a config written for a server
// without a jail ("/tftpboot/pxelinux.0") still works. NUL and other control
// bytes, invalid UTF-8 (which no fs.FS path may hold) and any ".." component
// are refused with a *DeniedError.
func CleanName(name, root string) (string, error) {
	if name == "" {
		return "", &DeniedError{Name: name, Reason: "empty file name"}
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < 0x20 || c == 0x7f {
			return "", &DeniedError{Name: name, Reason: fmt.Sprintf("control byte 0x%02x in file name", c)}
		}
	}
	if !utf8.ValidString(name) {
		return "", &DeniedError{Name: name, Reason: "file name is not valid UTF-8"}
	}
	p := strings.ReplaceAll(name, `\`, "/")
	abs := strings.HasPrefix(p, "/")
	for _, elem := range strings.Split(p, "/") {
		if elem == ".." {
			return "", &DeniedError{Name: name, Reason: `".." in file name`}
		}
	}
	p = path.Clean("/" + p)
	if abs && root != "" {
		r := path.Clean("/" + filepath.ToSlash(root))
		if r != "/" && strings.HasPrefix(p, r+"/") {
			p = strings.TrimPrefix(p, r)
		}
	}
	p = strings.TrimPrefix(p, "/")
	if p == "" {
		p = "."
	}
	return p, nil
}

// Tree is a directory on disk served as a jail. It implements fs.FS and
// fs.StatFS; files it opens are *os.File, so they also implement io.ReaderAt.
type Tree struct {
	root *os.Root
	dir  string // absolute path of the root, for CleanName
}

// Open opens dir as a Tree. The directory must exist.
func Open(dir string) (*Tree, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("boot tree %s: %w", dir, err)
	}
	r, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("boot tree: %w", err)
	}
	return &Tree{root: r, dir: abs}, nil
}

// Dir is the absolute path of the tree on disk.
func (t *Tree) Dir() string { return t.dir }

// Close releases the tree's directory handle.
func (t *Tree) Close() error { return t.root.Close() }

// Open opens a file for reading. name is either a clean fs.FS path or a raw
// request name: it is passed through CleanName first. Only regular files that
// are world-readable are returned; everything else is an error that wraps
// fs.ErrNotExist or fs.ErrPermission (a *DeniedError, which says why).
func (t *Tree) Open(name string) (fs.File, error) {
	clean, err := CleanName(name, t.dir)
	if err != nil {
		return nil, err
	}
	// Check before opening too: opening a device can have side effects.
	fi, err := t.root.Stat(clean)
	if err != nil {
		return nil, t.explain(name, clean, err)
	}
	if err := checkServable(name, fi); err != nil {
		return nil, err
	}
	// Non-blocking: opening a FIFO for reading waits for a writer, and the
	// name may have become one since the check above. Reading a regular
	// file is the same with O_NONBLOCK; what is not one is refused below.
	f, err := t.root.OpenFile(clean, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, t.explain(name, clean, err)
	}
	fi, err = f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", clean, err)
	}
	if err := checkServable(name, fi); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Stat reports on a file with the same rules as Open.
func (t *Tree) Stat(name string) (fs.FileInfo, error) {
	clean, err := CleanName(name, t.dir)
	if err != nil {
		return nil, err
	}
	fi, err := t.root.Stat(clean)
	if err != nil {
		return nil, t.explain(name, clean, err)
	}
	if err := checkServable(name, fi); err != nil {
		return nil, err
	}
	return fi, nil
}

func checkServable(name string, fi fs.FileInfo) error {
	if fi.IsDir() {
		return &fs.PathError{Op: "open", Path: name, Err: errIsDir}
	}
	if !fi.Mode().IsRegular() {
		return &DeniedError{Name: name, Reason: "not a regular file"}
	}
	if fi.Mode().Perm()&0o004 == 0 {
		return &DeniedError{Name: name, Reason: fmt.Sprintf("file is not world-readable (mode %04o); chmod o+r it", fi.Mode().Perm())}
	}
	return nil
}

// errIsDir is returned (wrapped) for directories; it counts as "not found"
// for clients, since a directory is never a file they can fetch.
var errIsDir = fmt.Errorf("is a directory: %w", fs.ErrNotExist)

// explain turns an os.Root error into one that says what happened. os.Root
// reports escapes (a symlink pointing outside, an absolute symlink) with a
// generic error; the operator needs to know it was the jail, not a missing file.
func (t *Tree) explain(name, clean string, err error) error {
	// A name that goes through a regular file ("pxelinux.0/x", ENOTDIR)
	// names nothing: not found, not refused.
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return &fs.PathError{Op: "open", Path: clean, Err: fs.ErrNotExist}
	}
	if errors.Is(err, fs.ErrPermission) {
		return &DeniedError{Name: name, Reason: "permission denied by the operating system"}
	}
	var pe *fs.PathError
	if errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "escapes") {
		return &DeniedError{Name: name, Reason: "path resolves outside the boot tree (symbolic link?)"}
	}
	return &DeniedError{Name: name, Reason: err.Error()}
}
