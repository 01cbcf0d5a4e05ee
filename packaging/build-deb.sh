#!/usr/bin/env bash
# Builds the Debian package of pxed from this repository:
#
#   packaging/build-deb.sh [OUTDIR]      # default: dist/
#
# VERSION (default: from `git describe`, else 0.0.0~dev) is stamped into the
# binary (pxed version) and the package. Needs Go and network access to the
# Go module proxy once (nfpm is built with `go run`).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-dist}
NFPM=github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0
# A release tag (v1.2.3) as it is; between releases, or without tags,
# 0.0.0~git<commit> (sorts before any release).
if [[ -z ${VERSION:-} ]]; then
	VERSION=$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null || true)
	if [[ -z $VERSION ]]; then
		rev=$(git rev-parse --short=12 HEAD 2>/dev/null || echo dev)
		VERSION=0.0.0~git$rev
	fi
fi
VERSION=${VERSION#v}
VERSION=${VERSION//-/+} # v1.2.3-4-gabc: Debian keeps "-" for its own revision
ARCH=$(go env GOARCH)
mkdir -p "$OUT" build
trap 'rm -f build/pxed build/pxed.8.gz build/pxed.bash build/pxed.fish; rmdir build 2>/dev/null || true' EXIT
CGO_ENABLED=0 go build -trimpath -ldflags "-X main.version=v$VERSION" -o build/pxed ./cmd/pxed
# The manual page and completions, from the binary's own command definitions.
build/pxed man | gzip -9n >build/pxed.8.gz
build/pxed completion bash >build/pxed.bash
build/pxed completion fish >build/pxed.fish
PXED_VERSION=$VERSION PXED_ARCH=$ARCH go run "$NFPM" package --config packaging/nfpm.yaml --packager deb --target "$OUT"
ls "$OUT"/pxed_"$VERSION"_"$ARCH".deb
