#!/usr/bin/env bash
# bench/xenboot: pxed-xenboot from start to output (DHCP as the guest, the
# PXELINUX config, a Debian kernel and two initrds) on each bridge case of
# TestE2EXenBootloaderBridges, and on the classic one (dom0 on the guests'
# subnet) also with a pxed that fetches through dom0's own IP stack, in the
# same run. Run as root from anywhere (the packages of .ci/run installed):
#
#   bench/xenboot/run.sh                 # 3 rounds of 10 boots per case
#   ROUNDS=5 BOOTS=20 bench/xenboot/run.sh
#
# Environment (defaults in brackets):
#   ROUNDS [3]   benchmark rounds (go test -count); medians are reported
#   BOOTS [10]   boots per case per round (go test -benchtime BOOTSx)
#   OLD_REV [be8082f]  the revision whose bootloader fetches through dom0's
#                stack (the last before guest identity)
# Everything runs in network namespaces the benchmark creates
# (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24), deleted afterwards.
set -euo pipefail
export LC_ALL=C
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ROUNDS=${ROUNDS:-3}
BOOTS=${BOOTS:-10}
OLD_REV=${OLD_REV:-be8082f}
for v in ROUNDS BOOTS; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "$v must be a positive integer" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/src"
git -C "$REPO" archive "$OLD_REV" | tar -x -C "$WORK/src"
(cd "$WORK/src" && go build -o "$WORK/pxed-old" ./cmd/pxed)
cd "$REPO"
PXED_E2E=1 PXED_OLD_BIN=$WORK/pxed-old timeout 1800 go test -run '^$' -bench '^BenchmarkXenBootloader$' \
	-benchtime "${BOOTS}x" -count "$ROUNDS" -timeout 30m ./test/e2e | tee "$WORK/raw" >&2

# BenchmarkXenBootloader/CASE/KIND-2   10   123456789 ns/op
echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) CPUs; pxed: $(git rev-parse --short HEAD)$([[ -n $(git status --porcelain -- cmd internal go.mod) ]] && echo ' + uncommitted changes'); dom0-stack: $OLD_REV"
echo
echo "| Bridge case | Bootloader | Median ms per boot | Rounds (ms) |"
echo "|---|---|---:|---|"
awk '/^BenchmarkXenBootloader\// {
	name = $1; sub(/^BenchmarkXenBootloader\//, "", name); sub(/-[0-9]+$/, "", name)
	ms[name] = ms[name] " " sprintf("%.0f", $3 / 1e6)
} END { for (n in ms) print n "\t" ms[n] }' "$WORK/raw" | sort | while IFS=$'\t' read -r name rounds; do
	med=$(tr ' ' '\n' <<<"$rounds" | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}')
	printf '| %s | %s | %s | %s |\n' "${name%/*}" "${name##*/}" "$med" "${rounds# }"
done | sed 's/_/ /g'
echo
echo "Command: \`ROUNDS=$ROUNDS BOOTS=$BOOTS OLD_REV=$OLD_REV bench/xenboot/run.sh\`"
