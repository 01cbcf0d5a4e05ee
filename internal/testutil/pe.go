package testutil

import (
	"bytes"
	"encoding/binary"
)

// PE64 builds a minimal PE32+ (x86-64) image whose Authenticode
// certificate table (data directory 4) is cert, placed at the end of the
// file — or at certOff when that is not 0, to build broken ones — or
// absent when cert is nil. Enough for code that reads who signed an EFI
// program; nothing runs it.
func PE64(cert []byte, certOff uint32) []byte {
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

// PENumberOfRvaAndSizes is the offset of that field in a PE64 image.
const PENumberOfRvaAndSizes = 0x40 + 4 + 20 + 108
