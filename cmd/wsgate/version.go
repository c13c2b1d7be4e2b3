package main

import (
	"fmt"
	"runtime/debug"
	"strings"
)

// Release builds stamp these with the linker, for a binary built where Go
// cannot see the VCS (the container image: .git is not in its context):
//
//	go build -ldflags "-X main.version=v1.2.3 -X main.revision=$(git rev-parse HEAD)" ./cmd/wsgate
//
// They are the only package variables, and only the linker writes them.
var (
	version  string
	revision string
)

// buildStamp is what `wsgate version` reports, gathered from the linker
// stamps and the binary's build information.
type buildStamp struct {
	version  string // release version, or Go's version of the main module
	revision string // VCS commit
	modified bool   // built from a work tree with uncommitted changes
	time     string // commit time
	goVer    string // runtime.Version()
	platform string // GOOS/GOARCH
	info     *debug.BuildInfo
}

// stampOf combines the linker stamps (which win) with the build info Go
// records from a checkout (vcs.revision, vcs.modified, vcs.time).
func stampOf(ldVersion, ldRevision string, info *debug.BuildInfo, goVer, platform string) buildStamp {
	s := buildStamp{version: ldVersion, revision: ldRevision, goVer: goVer, platform: platform, info: info}
	if info == nil {
		return s
	}
	if s.version == "" && info.Main.Version != "" && info.Main.Version != "(devel)" {
		s.version = info.Main.Version
	}
	for _, kv := range info.Settings {
		switch kv.Key {
		case "vcs.revision":
			if s.revision == "" {
				s.revision = kv.Value
			}
		case "vcs.modified":
			s.modified = kv.Value == "true" && ldRevision == ""
		case "vcs.time":
			s.time = kv.Value
		}
	}
	return s
}

// headline is the first line of `wsgate version`: the release version, else
// the revision; never a bare "(devel)".
func (s buildStamp) headline() string {
	dirty := ""
	if s.modified {
		dirty = "+modified"
	}
	switch {
	case s.version != "":
		return "wsgate " + s.version
	case s.revision != "":
		return "wsgate devel-" + shortRev(s.revision) + dirty
	}
	return "wsgate devel (no version or VCS revision recorded: build from a git checkout, or with -ldflags \"-X main.version=...\")"
}

func shortRev(r string) string {
	if len(r) > 12 {
		return r[:12]
	}
	return r
}

// String is the whole `wsgate version` output.
func (s buildStamp) String() string {
	var b strings.Builder
	b.WriteString(s.headline() + "\n")
	if s.revision != "" {
		fmt.Fprintf(&b, "revision: %s", s.revision)
		if s.modified {
			b.WriteString(" (modified)")
		}
		b.WriteString("\n")
	}
	if s.time != "" {
		fmt.Fprintf(&b, "commit time: %s\n", s.time)
	}
	fmt.Fprintf(&b, "go: %s %s\n", s.goVer, s.platform)
	if s.info != nil {
		fmt.Fprintf(&b, "\n%s", s.info)
	}
	return b.String()
}
