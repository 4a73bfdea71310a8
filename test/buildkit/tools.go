//go:build tools

// Package tools pins the BuildKit daemon and client that skiff's tests build
// from the official module (see build.sh).
package tools

import (
	_ "github.com/moby/buildkit/cmd/buildctl"
	_ "github.com/moby/buildkit/cmd/buildkitd"
)
