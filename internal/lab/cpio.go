package lab

import (
	"compress/gzip"
	"fmt"
	"io"
)

// cpioEntry is one file of a newc ("070701") archive, the format the
// Linux kernel unpacks as an initramfs.
type cpioEntry struct {
	Name         string
	Mode         uint32 // type and permission bits (0o100755, 0o040755, 0o020600, 0o120777)
	Data         []byte // contents; the target for a symlink
	RMajor, RMin uint32 // device numbers of a character or block device
}

// Mode type bits of newc.
const (
	modeDir     = 0o040000
	modeFile    = 0o100000
	modeSymlink = 0o120000
	modeChar    = 0o020000
)

// writeCpioGz writes the entries as a gzipped newc archive. Device nodes
// need no privileges: they are only described.
func writeCpioGz(w io.Writer, entries []cpioEntry) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	ino := uint32(1)
	pad := func(n int) error {
		if n%4 == 0 {
			return nil
		}
		_, err := zw.Write(make([]byte, 4-n%4))
		return err
	}
	write := func(e cpioEntry) error {
		nlink := 1
		if e.Mode&0o170000 == modeDir {
			nlink = 2
		}
		hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			ino, e.Mode, 0, 0, nlink, 0, len(e.Data), 0, 0, e.RMajor, e.RMin, len(e.Name)+1, 0)
		ino++
		if _, err := io.WriteString(zw, hdr+e.Name+"\x00"); err != nil {
			return err
		}
		if err := pad(len(hdr) + len(e.Name) + 1); err != nil {
			return err
		}
		if _, err := zw.Write(e.Data); err != nil {
			return err
		}
		return pad(len(e.Data))
	}
	for _, e := range entries {
		if err := write(e); err != nil {
			return err
		}
	}
	if err := write(cpioEntry{Name: "TRAILER!!!"}); err != nil {
		return err
	}
	return zw.Close()
}
