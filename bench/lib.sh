# shellcheck shell=bash
# Shared by the bench scripts (sourced, not run). The caller defines REPO
# (the repository), WORK (its temporary directory) and die().

# build_pxed [HINT]: put the pxed to measure in $WORK/bin/pxed — PXED_BIN as
# given, PXED_REV built from git, or the working tree built — and set PXED
# (its path) and PXED_DESC (what it is, for the report). HINT is appended to
# the error when the working tree does not build.
build_pxed() {
	local hint=${1:-}
	mkdir -p "$WORK/bin"
	if [[ -n ${PXED_BIN:-} ]]; then
		[[ -x $PXED_BIN ]] || die "PXED_BIN=$PXED_BIN is not executable"
		cp "$PXED_BIN" "$WORK/bin/pxed"
		PXED_DESC="prebuilt $PXED_BIN"
	elif [[ -n ${PXED_REV:-} ]]; then
		mkdir "$WORK/src"
		git -C "$REPO" archive "$PXED_REV" | tar -x -C "$WORK/src"
		(cd "$WORK/src" && go build -o "$WORK/bin/pxed" ./cmd/pxed) || die "building pxed at $PXED_REV failed"
		PXED_DESC="git $(git -C "$REPO" rev-parse --short "$PXED_REV") ($PXED_REV)"
	else
		(cd "$REPO" && go build -o "$WORK/bin/pxed" ./cmd/pxed) ||
			die "building pxed from the working tree failed (PXED_REV=HEAD builds the last commit${hint:+; $hint})"
		PXED_DESC="working tree at $(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo '?')"
		if [[ -n $(git -C "$REPO" status --porcelain -- cmd internal go.mod go.sum 2>/dev/null) ]]; then
			PXED_DESC+=" + uncommitted changes"
		fi
	fi
	# shellcheck disable=SC2034 # used by the sourcing script
	PXED=$WORK/bin/pxed
}
