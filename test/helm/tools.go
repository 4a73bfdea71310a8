//go:build tools

// Package tools pins the helm binary (Helm 4, the chart engine skiff renders
// charts with and the peer its deploy benchmarks run against) that the test bed
// builds from the official module (see build.sh).
package tools

import (
	_ "helm.sh/helm/v4/cmd/helm"
)
