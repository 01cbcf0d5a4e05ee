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
		tok, err := ParseAPIToken(data)
		if err != nil {
			return "", fmt.Errorf("api token %s: %v", path, err)
		}
		return tok, nil
	case errors.Is(err, fs.ErrNotExist) && c.API.TokenFile == "" && !create:
		return "", nil
	case errors.Is(err, fs.ErrNotExist) && c.API.TokenFile == "":
		tok := NewAPIToken()
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

// NewAPIToken is a new random API token: 192 bits in hex.
func NewAPIToken() string {
	b := make([]byte, 24)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// maxAPIToken bounds a token read from a file or from etcd.
const maxAPIToken = 1024

// ParseAPIToken reads a token from a file's (or a store's) bytes: one
// word of 16 to 1024 printable characters, surrounding space ignored.
func ParseAPIToken(data []byte) (string, error) {
	tok := strings.TrimSpace(string(data))
	switch {
	case len(tok) < 16:
		return "", errors.New("shorter than 16 characters")
	case len(tok) > maxAPIToken:
		return "", fmt.Errorf("longer than %d characters", maxAPIToken)
	case strings.ContainsFunc(tok, func(c rune) bool { return c <= ' ' || c >= 0x7f }):
		return "", errors.New("holds spaces, control or non-ASCII characters")
	}
	return tok, nil
}
