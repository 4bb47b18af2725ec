#!/usr/bin/env bash
# Builds the Pulumi CLI the end-to-end tests (test/e2e) drive, into .cache/pulumi-cli/bin:
#   pulumi                          the real CLI (github.com/pulumi/pulumi/pkg/v3/cmd/pulumi),
#                                   same version as the @pulumi/pulumi SDK in package.json
#   pulumi-language-nodejs          a minimal Node.js language host (test/e2e/pulumi-cli/langhost):
#                                   the real one's Go module is not served by this network's proxy
#   pulumi-resource-pulumi-nodejs   the dynamic-provider launcher the real SDK ships
# Only Go and the Go module proxy are needed; nothing is downloaded from pulumi.com. Skips the
# build when the binaries are already there for this version, or PULUMI_CLI_DIR holds a built one. Without Go it says so and exits 0
# (the e2e tests then skip, unless PGMIGRATE_E2E_REQUIRED=1 makes them fail).
set -euo pipefail
cd "$(dirname "$0")/.."
src=test/e2e/pulumi-cli
out=.cache/pulumi-cli/bin
version=$(sed -n 's#^require github.com/pulumi/pulumi/pkg/v3 \(v[0-9.]*\)$#\1#p' "$src/cli/go.mod")
stamp="$out/.built-$version-$(cat "$src/langhost/main.go" "$src/pulumi-resource-pulumi-nodejs" | sha256sum | cut -c1-12)"

if [ -n "${PULUMI_CLI_DIR:-}" ] && [ -x "$PULUMI_CLI_DIR/pulumi" ] && [ -x "$PULUMI_CLI_DIR/pulumi-language-nodejs" ]; then
  echo "pulumi-cli: using the CLI in PULUMI_CLI_DIR=$PULUMI_CLI_DIR"
  exit 0
fi
if [ -f "$stamp" ]; then
  echo "pulumi-cli: $version already built in $out"
  exit 0
fi
if ! command -v go >/dev/null && [ -x /usr/local/go/bin/go ]; then PATH="$PATH:/usr/local/go/bin"; fi
if ! command -v go >/dev/null; then
  echo "pulumi-cli: no Go toolchain on PATH; the e2e tests (test/e2e) will be skipped" >&2
  exit 0
fi
mkdir -p "$out"
rm -f "$out"/.built-*
root=$PWD
start=$(date +%s)
echo "pulumi-cli: building the Pulumi CLI $version (first time: ~300 MB of modules, a few minutes)"
build_cli() {
  (cd "$src/cli" && go build -trimpath \
    -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version" \
    -o "$root/$out/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
}
# A module download can fail on a flaky network: one more try before giving up.
build_cli || { echo "pulumi-cli: retrying the build once" >&2; sleep 5; build_cli; }
echo "pulumi-cli: building the Node.js language host"
(cd "$src/langhost" && go build -trimpath -o "$root/$out/pulumi-language-nodejs" .)
install -m 0755 "$src/pulumi-resource-pulumi-nodejs" "$out/pulumi-resource-pulumi-nodejs"
touch "$stamp"
echo "pulumi-cli: done in $(($(date +%s) - start)) s: $("$out/pulumi" version)"
