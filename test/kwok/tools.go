//go:build tools

// Package tools pins the kwok binary (simulated nodes and pod lifecycles) that
// the second test cluster is built with, from the official module (see build.sh).
package tools

import (
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
