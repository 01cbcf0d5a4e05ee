package explain

import (
	"encoding/binary"
	"os"
	"testing"

	"pxed/internal/testutil"
)

func TestPESigner(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want signer
		err  bool
	}{
		{"unsigned", testutil.PE64(nil, 0), unsigned, false},
		{"shim", testutil.PE64([]byte("...Microsoft Corporation UEFI CA 2011..."), 0), microsoft, false},
		{"distribution", testutil.PE64([]byte("...Debian Secure Boot CA..."), 0), vendor, false},
		{"table outside the file", testutil.PE64([]byte("Microsoft Corporation UEFI CA"), 1<<30), unsigned, true},
		{"more directories than PE32+ has", func() []byte {
			b := testutil.PE64(nil, 0)
			binary.LittleEndian.PutUint32(b[testutil.PENumberOfRvaAndSizes:], 0x7fffffff)
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
	f.Add(testutil.PE64(nil, 0))
	f.Add(testutil.PE64([]byte("Microsoft Corporation UEFI CA"), 0))
	f.Add(testutil.PE64([]byte("x"), 0xffffffff))
	f.Fuzz(func(t *testing.T, data []byte) {
		peSigner(data)
	})
}
