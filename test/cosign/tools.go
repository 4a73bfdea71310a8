//go:build tools

// Package tools pins cosign (github.com/sigstore/cosign/v2), the signing tool
// skiff calls for `build --sign` and `deploy.verify`, which the test bed builds
// from the official module (see build.sh).
package tools

import (
	_ "github.com/sigstore/cosign/v2/cmd/cosign"
)
