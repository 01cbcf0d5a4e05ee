package main

import (
	"runtime/debug"
	"strings"
)

// version is the release, stamped at build time:
//
//	go build -ldflags "-X main.version=v1.2.3" ./cmd/pxed
//
// Left empty, `pxed version` takes the module version from the build info
// (what `go install pxed/cmd/pxed@v1.2.3` or a build in a tagged checkout
// records), else "dev".
var version = ""

// versionString is what `pxed version` prints after "pxed ": the release,
// then, when the build recorded them, the VCS revision, its commit time
// and "modified" for a tree with uncommitted changes:
//
//	v1.2.3 (git 93ec588ab1c2, 2026-12-03T15:07:04Z)
func versionString() string {
	bi, _ := debug.ReadBuildInfo()
	return formatVersion(version, bi)
}

// formatVersion is versionString for a stamped release and build info
// (nil when the binary has none).
func formatVersion(stamped string, bi *debug.BuildInfo) string {
	v := stamped
	if v == "" && bi != nil && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	if v == "" {
		v = "dev"
	}
	if bi == nil {
		return v
	}
	var rev, at, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if rev == "" {
		return v
	}
	parts := []string{"git " + rev[:min(len(rev), 12)]}
	if at != "" {
		parts = append(parts, at)
	}
	if modified == "true" {
		parts = append(parts, "modified")
	}
	return v + " (" + strings.Join(parts, ", ") + ")"
}
