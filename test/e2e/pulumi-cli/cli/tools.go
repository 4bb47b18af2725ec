//go:build tools

// Pins the Pulumi CLI built for the end-to-end tests (scripts/pulumi-cli.sh): `go mod tidy`
// records its whole module graph here, so the build needs no network once modules are cached.
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
