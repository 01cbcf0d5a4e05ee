package main

import (
	"runtime/debug"
	"testing"
)

func TestFormatVersion(t *testing.T) {
	vcs := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i+1 < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	rev := "93ec588ab1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6"
	for _, tc := range []struct {
		name    string
		stamped string
		bi      *debug.BuildInfo
		want    string
	}{
		{"no build info", "", nil, "dev"},
		{"stamped, no build info", "v1.2.3", nil, "v1.2.3"},
		{"local build", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"},
			Settings: vcs("vcs.revision", rev, "vcs.time", "2026-12-03T15:07:04Z", "vcs.modified", "false")},
			"dev (git 93ec588ab1c2, 2026-12-03T15:07:04Z)"},
		{"uncommitted changes", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"},
			Settings: vcs("vcs.revision", rev, "vcs.modified", "true")},
			"dev (git 93ec588ab1c2, modified)"},
		{"go install @version", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.3.0"}}, "v0.3.0"},
		{"stamped wins", "v1.2.3", &debug.BuildInfo{Main: debug.Module{Version: "v0.0.0-20261203150704-93ec588ab1c2"},
			Settings: vcs("vcs.revision", rev)}, "v1.2.3 (git 93ec588ab1c2)"},
		{"short revision", "", &debug.BuildInfo{Settings: vcs("vcs.revision", "abc")}, "dev (git abc)"},
	} {
		if got := formatVersion(tc.stamped, tc.bi); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
