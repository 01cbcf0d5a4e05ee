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

# stop_server NAME: stop the server whose process group leader is PID[NAME]
# (an associative array of the caller): SIGTERM, up to 10 s to exit (pxed
# drains transfers for up to 5 s), then SIGKILL.
stop_server() {
	local name=$1 pid=${PID[$1]:-} i
	[[ -n $pid ]] || return 0
	unset "PID[$name]"
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 100; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}

# tail_logs: show the last lines of every non-empty file in $LOGS (after a
# failure, so the reason is on the terminal).
tail_logs() {
	local f
	[[ -d $LOGS ]] || return 0
	for f in "$LOGS"/*; do
		[[ -s $f ]] || continue
		log "--- last lines of $f"
		tail -n 5 "$f" >&2
	done
}
