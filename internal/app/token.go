package app

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"pxed/internal/config"
)

// APIToken reads the API token: api.token-file, else <state-dir>/api-token,
// which create makes with a random token (mode 0600) on first start.
// Without create, a missing default token is "" and no error.
func APIToken(c *config.Config, create bool) (string, error) {
	path := c.API.TokenFile
	if path == "" {
		path = filepath.Join(c.StateDir, APITokenName)
	}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		tok := strings.TrimSpace(string(data))
		if len(tok) < 16 {
			return "", fmt.Errorf("api token %s: shorter than 16 characters", path)
		}
		return tok, nil
	case errors.Is(err, fs.ErrNotExist) && c.API.TokenFile == "" && !create:
		return "", nil
	case errors.Is(err, fs.ErrNotExist) && c.API.TokenFile == "":
		b := make([]byte, 24)
		rand.Read(b)
		tok := hex.EncodeToString(b)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return "", fmt.Errorf("api token: %w", err)
		}
		_, err = f.WriteString(tok + "\n")
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", fmt.Errorf("api token: %w", err)
		}
		return tok, nil
	default:
		return "", fmt.Errorf("api token: %w", err)
	}
}
