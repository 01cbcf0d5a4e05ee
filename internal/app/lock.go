package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// LockName is the file in the state directory that `pxed serve` holds a
// lock on (flock) for as long as it runs.
const LockName = "serve.lock"

// ErrLocked says another process (a running pxed serve) holds the state
// directory.
var ErrLocked = errors.New("state directory in use by a running pxed serve")

// LockStateDir takes the lock of the state directory dir without waiting:
// pxed serve holds it while it runs, and a command that edits the state
// files without the server (pxed host, when no server answers) holds it
// while it edits. ErrLocked when another process holds it; an error
// matching fs.ErrNotExist when dir does not exist. unlock releases it.
func LockStateDir(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, LockName), os.O_RDWR|os.O_CREATE|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state directory lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("state directory lock: %w", err)
	}
	return func() { f.Close() }, nil
}
