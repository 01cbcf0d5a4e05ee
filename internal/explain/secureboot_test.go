package explain

import (
	"bytes"
	"encoding/binary"
	"os"
	"testing"
)

// pe64 builds a minimal PE32+ image whose certificate table (data
// directory 4) is cert at the end of the file, or absent when cert is nil;
// certOff, when not 0, overrides the table's offset.
func pe64(cert []byte, certOff uint32) []byte {
	var b bytes.Buffer
	dos := make([]byte, 0x40)
	copy(dos, "MZ")
	binary.LittleEndian.PutUint32(dos[0x3c:], 0x40)
	b.Write(dos)
	b.WriteString("PE\x00\x00")
	coff := make([]byte, 20)
	binary.LittleEndian.PutUint16(coff[0:], 0x8664) // x86-64
	binary.LittleEndian.PutUint16(coff[16:], 240)   // SizeOfOptionalHeader
	b.Write(coff)
	opt := make([]byte, 240)
	binary.LittleEndian.PutUint16(opt[0:], 0x20b) // PE32+
	binary.LittleEndian.PutUint32(opt[108:], 16)  // NumberOfRvaAndSizes
	end := uint32(b.Len() + len(opt))
	if cert != nil {
		off := end
		if certOff != 0 {
			off = certOff
		}
		binary.LittleEndian.PutUint32(opt[112+4*8:], off)
		binary.LittleEndian.PutUint32(opt[112+4*8+4:], uint32(len(cert)))
	}
	b.Write(opt)
	b.Write(cert)
	return b.Bytes()
}

func TestPESigner(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want signer
		err  bool
	}{
		{"unsigned", pe64(nil, 0), unsigned, false},
		{"shim", pe64([]byte("...Microsoft Corporation UEFI CA 2011..."), 0), microsoft, false},
		{"distribution", pe64([]byte("...Debian Secure Boot CA..."), 0), vendor, false},
		{"table outside the file", pe64([]byte("Microsoft Corporation UEFI CA"), 1<<30), unsigned, true},
		{"more directories than PE32+ has", func() []byte {
			b := pe64(nil, 0)
			binary.LittleEndian.PutUint32(b[0x40+4+20+108:], 0x7fffffff)
			return b
		}(), unsigned, true},
		{"not a PE", []byte("#!ipxe\nchain boot.ipxe\n"), unsigned, true},
		{"empty", nil, unsigned, true},
	} {
		got, err := peSigner(tc.data)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("%s: %v, %v; want %v, error %v", tc.name, got, err, tc.want, tc.err)
		}
	}
	// Debian's iPXE build is unsigned.
	if data, err := os.ReadFile("/usr/lib/ipxe/ipxe.efi"); err == nil {
		if s, err := peSigner(data); s != unsigned || err != nil {
			t.Errorf("ipxe.efi: %v, %v; want unsigned", s, err)
		}
	}
}

// FuzzPESigner: any file in a boot tree (a truncated download, a
// renamed file) is an answer or an error, never a crash.
func FuzzPESigner(f *testing.F) {
	f.Add(pe64(nil, 0))
	f.Add(pe64([]byte("Microsoft Corporation UEFI CA"), 0))
	f.Add(pe64([]byte("x"), 0xffffffff))
	f.Fuzz(func(t *testing.T, data []byte) {
		peSigner(data)
	})
}
