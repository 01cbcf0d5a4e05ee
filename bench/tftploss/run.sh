#!/usr/bin/env bash
# TFTP on a lossy link: pxed against tftp-hpa with the same real clients,
# LOSS_PCT % of UDP dropped each way. Run as root from anywhere:
#
#   bench/tftploss/run.sh                              # 3 rounds, prints a Markdown report
#   ROUNDS=1 FILE_KIB=256 CLIENT_TIMEOUT=60 bench/tftploss/run.sh   # a quick smoke test
#
# Two network namespaces joined by a veth pair: the servers' (pxed on
# 198.18.0.1:69, tftpd-hpa on 198.18.0.3:69, the same boot tree) and the
# clients' (198.18.0.2). An nftables rule in each namespace drops LOSS_PCT %
# of the UDP packets it receives (numgen random), so each direction loses its
# share once. Every round, for every client, FILES different files of
# FILE_KIB KiB are fetched in parallel (one client process each) from each
# server in turn (the order alternates every round); the time is the wall
# time until the last client exits. Every client runs under timeout(1).
#
# Clients (CLIENTS, in this order by default):
#   tftp      tftp-hpa's client: RFC 1350 lock-step, 512-byte blocks (this
#             version has no option support, so no blksize)
#   atftp     atftp, --option "blksize BLKSIZE", lock-step
#   atftp-w   atftp, blksize BLKSIZE and --option "windowsize WINDOWSIZE"
#             (RFC 7440; tftp-hpa does not acknowledge windowsize and serves
#             the same request lock-step)
#   curl      curl tftp://, --tftp-blksize BLKSIZE; curl asks for the RFC 2349
#             timeout option (6 s), which both servers honour; run in the
#             first CURL_ROUNDS rounds only, under CURL_TIMEOUT
#
# Environment (defaults in brackets):
#   ROUNDS [3]  LOSS_PCT [3]  FILES [4]  FILE_KIB [5120]  BLKSIZE [1468]
#   WINDOWSIZE [16]  CLIENT_TIMEOUT [900] seconds per client process
#   CLIENTS ["tftp atftp atftp-w curl"]  CURL_ROUNDS [1]  CURL_TIMEOUT [300]
#   PXED_BIN / PXED_REV   as bench/tftp: a prebuilt pxed, or one built from git
#   PXED_ARGS             extra `pxed serve` flags
#   KEEP_WORK=1           keep the temporary directory (tree, logs, raw results)
#   CAPTURE=1             record the UDP headers crossing the clients' veth
#                         (what each side sent, before either side's loss
#                         rule) in WORK/capture.pcap, to see why a transfer
#                         failed (implies KEEP_WORK)
set -euo pipefail
export LC_ALL=C

INVOCATION=
for v in ROUNDS LOSS_PCT FILES FILE_KIB BLKSIZE WINDOWSIZE CLIENT_TIMEOUT CLIENTS CURL_ROUNDS CURL_TIMEOUT PXED_BIN PXED_REV PXED_ARGS; do
	[[ -n ${!v:-} ]] && INVOCATION+="$v=$(printf %q "${!v}") "
done
INVOCATION+="bench/tftploss/run.sh"

ROUNDS=${ROUNDS:-3}
LOSS_PCT=${LOSS_PCT:-3}
FILES=${FILES:-4}
FILE_KIB=${FILE_KIB:-5120}
BLKSIZE=${BLKSIZE:-1468}
WINDOWSIZE=${WINDOWSIZE:-16}
CLIENT_TIMEOUT=${CLIENT_TIMEOUT:-900}
CLIENTS=${CLIENTS:-tftp atftp atftp-w curl}
CURL_ROUNDS=${CURL_ROUNDS:-1}
CURL_TIMEOUT=${CURL_TIMEOUT:-300}
PXED_ARGS=${PXED_ARGS:-}
KEEP_WORK=${KEEP_WORK:-}
CAPTURE=${CAPTURE:-}
[[ -n $CAPTURE ]] && KEEP_WORK=1

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SERVERS=(pxed tftp-hpa)
declare -A ADDR=([pxed]=198.18.0.1 [tftp-hpa]=198.18.0.3)
CLIENT_ADDR=198.18.0.2
NS_S=tftploss-srv-$$
NS_C=tftploss-cli-$$
VETH=tl$$
declare -A PID=()
NETNS_MADE=()

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

# --- preflight ---------------------------------------------------------------

[[ $EUID -eq 0 ]] || die "run as root: network namespaces, nftables, port 69"
for cmd in go git ip nft curl atftp tftp in.tftpd timeout setsid; do
	command -v "$cmd" >/dev/null || die "$cmd not found (Debian: apt-get install nftables curl atftp tftp-hpa tftpd-hpa)"
done
for v in ROUNDS FILES FILE_KIB BLKSIZE WINDOWSIZE CLIENT_TIMEOUT CURL_TIMEOUT; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done
[[ $CURL_ROUNDS =~ ^[0-9]+$ ]] || die "CURL_ROUNDS must be a number"
[[ $LOSS_PCT =~ ^[0-9]+$ ]] && ((LOSS_PCT < 100)) || die "LOSS_PCT must be 0..99"
for c in $CLIENTS; do
	case $c in tftp | atftp | atftp-w | curl) ;; *) die "unknown client $c (tftp, atftp, atftp-w, curl)" ;; esac
done

WORK=$(mktemp -d /tmp/tftploss.XXXXXX)
SCRATCH=$WORK/out
[[ -d /dev/shm && -w /dev/shm ]] && SCRATCH=$(mktemp -d /dev/shm/tftploss.XXXXXX)
TREE=$WORK/tree
LOGS=$WORK/logs
RESULTS=$WORK/results.tsv # client server round seconds status bytes
mkdir -p "$TREE" "$LOGS" "$SCRATCH" "$WORK/state"
: >"$RESULTS"


cleanup() {
	local rc=$? s ns
	trap - EXIT INT TERM
	for s in "${!PID[@]}"; do stop_server "$s"; done
	for ns in "${NETNS_MADE[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
	((rc == 0)) || tail_logs
	[[ $SCRATCH != "$WORK/out" ]] && rm -rf "$SCRATCH"
	[[ -n $KEEP_WORK ]] && log "kept $WORK" || rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build, tree, network ----------------------------------------------------

build_pxed ""
log "pxed: $PXED_DESC"

FILE_BYTES=$((FILE_KIB << 10))
for ((i = 1; i <= FILES; i++)); do head -c "$FILE_BYTES" /dev/urandom >"$TREE/f$i"; done
echo ready >"$TREE/tiny"
chmod 755 "$TREE"
chmod 644 "$TREE"/*

ip netns add "$NS_S" && NETNS_MADE+=("$NS_S")
ip netns add "$NS_C" && NETNS_MADE+=("$NS_C")
ip link add "${VETH}s" netns "$NS_S" type veth peer name "${VETH}c" netns "$NS_C"
ip -n "$NS_S" addr add "${ADDR[pxed]}/24" dev "${VETH}s"
ip -n "$NS_S" addr add "${ADDR[tftp-hpa]}/24" dev "${VETH}s"
ip -n "$NS_C" addr add "$CLIENT_ADDR/24" dev "${VETH}c"
for ns in "$NS_S" "$NS_C"; do
	ip -n "$ns" link set lo up
done
ip -n "$NS_S" link set "${VETH}s" up
ip -n "$NS_C" link set "${VETH}c" up
if [[ -n $CAPTURE ]]; then
	command -v tcpdump >/dev/null || die "CAPTURE=1 needs tcpdump"
	setsid ip netns exec "$NS_C" tcpdump -i "${VETH}c" -s 64 -U -w "$WORK/capture.pcap" udp \
		</dev/null >>"$LOGS/tcpdump.log" 2>&1 &
	PID[tcpdump]=$!
fi

# add_loss NS: drop LOSS_PCT % of the UDP packets NS receives; the first
# rule counts them all, the second the ones dropped. On input, not output:
# a packet dropped on output fails the sender's sendmsg(2) with EPERM, which
# no lost packet does (and which tftp-hpa's and atftp's clients take for a
# fatal error).
add_loss() {
	ip netns exec "$1" nft -f - <<-EOF
		table inet tftploss {
			chain in {
				type filter hook input priority 0; policy accept;
				meta l4proto udp counter
				meta l4proto udp numgen random mod 100 < $LOSS_PCT counter drop
			}
		}
	EOF
}
# loss_counts NS: "received dropped" UDP packets so far.
loss_counts() {
	ip netns exec "$1" nft list chain inet tftploss in |
		awk '/counter packets/ { for (i = 1; i < NF; i++) if ($i == "packets") v[++n] = $(i + 1) } END { print v[1] + 0, v[2] + 0 }'
}

# --- servers -----------------------------------------------------------------

in_srv() { ip netns exec "$NS_S" "$@"; }
in_cli() { ip netns exec "$NS_C" "$@"; }

start_server() {
	local name=$1
	case $name in
	pxed)
		# shellcheck disable=SC2086 # PXED_ARGS is a list of flags
		setsid ip netns exec "$NS_S" "$PXED" serve --tftp-root "$TREE" --tftp-addr "${ADDR[pxed]}:69" --http-addr "" \
			--state-dir "$WORK/state" $PXED_ARGS </dev/null >>"$LOGS/pxed.log" 2>&1 &
		;;
	tftp-hpa)
		setsid ip netns exec "$NS_S" in.tftpd -L -s "$TREE" -u root -a "${ADDR[tftp-hpa]}:69" \
			</dev/null >>"$LOGS/tftp-hpa.log" 2>&1 &
		;;
	esac
	PID[$name]=$!
	local i out=$SCRATCH/ready.$name
	for ((i = 0; i < 50; i++)); do
		kill -0 "${PID[$name]}" 2>/dev/null || die "$name exited at startup"
		if in_cli timeout 2 curl -s -o "$out" "tftp://${ADDR[$name]}/tiny" 2>/dev/null && [[ $(<"$out") == ready ]]; then
			return 0
		fi
		sleep 0.2
	done
	die "$name does not answer on ${ADDR[$name]}:69"
}

for s in "${SERVERS[@]}"; do start_server "$s"; done
add_loss "$NS_S"
add_loss "$NS_C"
log "servers up (pxed ${PID[pxed]}, tftp-hpa ${PID[tftp-hpa]}); $LOSS_PCT % of UDP dropped each way"

# --- clients -----------------------------------------------------------------

# fetch CLIENT ADDR FILE OUT LIMIT: one client process, in the clients'
# namespace, under timeout LIMIT.
fetch() {
	local client=$1 addr=$2 file=$3 out=$4 limit=$5
	case $client in
	tftp) in_cli timeout "$limit" tftp -m binary "$addr" -c get "$file" "$out" ;;
	atftp) in_cli timeout "$limit" atftp --option "blksize $BLKSIZE" -g -r "$file" -l "$out" "$addr" 69 ;;
	atftp-w) in_cli timeout "$limit" atftp --option "blksize $BLKSIZE" --option "windowsize $WINDOWSIZE" \
		-g -r "$file" -l "$out" "$addr" 69 ;;
	curl) in_cli timeout "$limit" curl -s --tftp-blksize "$BLKSIZE" -o "$out" "tftp://$addr/$file" ;;
	esac
}

# measure CLIENT SERVER ROUND: FILES clients at once, one file each; appends
# "client server round seconds status bytes": status ok, timeout (a client
# was killed by timeout(1); bytes says how far they got) or fail.
measure() {
	local client=$1 server=$2 round=$3 limit=$CLIENT_TIMEOUT i pids=() rcs=() t0 t1 secs status=ok bytes=0 sz
	[[ $client == curl ]] && limit=$CURL_TIMEOUT
	kill -0 "${PID[$server]}" 2>/dev/null || die "$server died"
	rm -f "$SCRATCH"/got.*
	t0=$EPOCHREALTIME
	for ((i = 1; i <= FILES; i++)); do
		fetch "$client" "${ADDR[$server]}" "f$i" "$SCRATCH/got.$i" "$limit" >>"$LOGS/$client.log" 2>&1 &
		pids+=($!)
	done
	for i in "${!pids[@]}"; do
		rc=0
		wait "${pids[$i]}" || rc=$?
		rcs+=("$rc")
	done
	t1=$EPOCHREALTIME
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	for ((i = 1; i <= FILES; i++)); do
		sz=$(stat -c %s "$SCRATCH/got.$i" 2>/dev/null || echo 0)
		bytes=$((bytes + sz))
		if [[ ${rcs[$((i - 1))]} == 124 ]]; then
			status=timeout
		elif [[ $status == ok ]] && ! cmp -s "$SCRATCH/got.$i" "$TREE/f$i"; then
			status=fail
		fi
	done
	kill -0 "${PID[$server]}" 2>/dev/null || status=fail
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$client" "$server" "$round" "$secs" "$status" "$bytes" >>"$RESULTS"
	log "  round $round  $client -> $server: $secs s, $status, $bytes of $((FILES * FILE_BYTES)) bytes"
}

# --- run ---------------------------------------------------------------------

read -r s_sent0 s_drop0 < <(loss_counts "$NS_S")
read -r c_sent0 c_drop0 < <(loss_counts "$NS_C")
for ((r = 1; r <= ROUNDS; r++)); do
	order=("${SERVERS[@]}")
	((r % 2 == 0)) && order=("${SERVERS[1]}" "${SERVERS[0]}")
	log "round $r/$ROUNDS, server order: ${order[*]}"
	for c in $CLIENTS; do
		[[ $c == curl ]] && ((r > CURL_ROUNDS)) && continue
		for s in "${order[@]}"; do measure "$c" "$s" "$r"; done
	done
done
read -r s_sent s_drop < <(loss_counts "$NS_S")
read -r c_sent c_drop < <(loss_counts "$NS_C")

# --- report ------------------------------------------------------------------

median() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) exit
		if (NR % 2) printf "%.1f\n", v[(NR + 1) / 2]
		else printf "%.1f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
med() { awk -F'\t' -v c="$1" -v s="$2" '$1 == c && $2 == s && $5 == "ok" { print $4 }' "$RESULTS" | median; }
counts() {
	awk -F'\t' -v c="$1" -v s="$2" '$1 == c && $2 == s { n++; k[$5]++ }
		END { printf "%d/%d", k["ok"], n; if (k["timeout"]) printf ", %d timed out", k["timeout"]; if (k["fail"]) printf ", %d failed", k["fail"] }' "$RESULTS"
}
# ratio CLIENT: tftp-hpa's median over pxed's; when every tftp-hpa run timed
# out, a lower bound from the timeout.
ratio() {
	local p h lim=$CLIENT_TIMEOUT
	[[ $1 == curl ]] && lim=$CURL_TIMEOUT
	p=$(med "$1" pxed)
	h=$(med "$1" tftp-hpa)
	if [[ -z $p ]]; then
		echo -
	elif [[ -n $h ]]; then
		awk -v a="$h" -v b="$p" 'BEGIN { printf "%.1f", a / b }'
	elif awk -F'\t' -v c="$1" '$1 == c && $2 == "tftp-hpa" && $5 == "timeout" { f = 1 } END { exit !f }' "$RESULTS"; then
		awk -v a="$lim" -v b="$p" 'BEGIN { printf "> %.1f", a / b }'
	else
		echo -
	fi
}
pct() { awk -v d="$1" -v n="$2" 'BEGIN { if (n > 0) printf "%.2f", 100 * d / n; else print "-" }'; }

{
	echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) CPUs, kernel $(uname -r); rounds: $ROUNDS; pxed: $PXED_DESC"
	echo
	echo "Workload: $FILES files of $FILE_KIB KiB fetched in parallel (one client process each); $LOSS_PCT % of UDP dropped each way."
	echo "Measured loss: client to server $((s_drop - s_drop0)) of $((s_sent - s_sent0)) packets ($(pct $((s_drop - s_drop0)) $((s_sent - s_sent0))) %),"
	echo "server to client $((c_drop - c_drop0)) of $((c_sent - c_sent0)) ($(pct $((c_drop - c_drop0)) $((c_sent - c_sent0))) %)."
	echo
	echo "| Client | Server | Median s (OK rounds) | OK rounds | tftp-hpa ÷ pxed |"
	echo "|---|---|---:|---:|---:|"
	for c in $CLIENTS; do
		for s in "${SERVERS[@]}"; do
			m=$(med "$c" "$s")
			rt=""
			[[ $s == pxed ]] && rt=$(ratio "$c")
			printf '| %s | %s | %s | %s | %s |\n' "$c" "$s" "${m:--}" "$(counts "$c" "$s")" "$rt"
		done
	done
	echo
	echo "- Time: wall time from starting the $FILES clients until the last one exits; median over the rounds where all completed byte-exact."
	echo "- tftp-hpa ÷ pxed: the two medians of this run; \"> x\" when every tftp-hpa run hit the timeout (its limit over pxed's median)."
	echo "- Clients: tftp = tftp-hpa's client (512-byte blocks, no options); atftp = blksize $BLKSIZE, lock-step;"
	echo "  atftp-w = blksize $BLKSIZE, windowsize $WINDOWSIZE (tftp-hpa ignores windowsize); curl = --tftp-blksize $BLKSIZE, sends timeout=6."
	echo
	echo "Raw results (client, server, round, seconds, status, bytes received of $((FILES * FILE_BYTES))):"
	echo
	echo '```'
	cat "$RESULTS"
	echo '```'
	echo
	echo "Command: \`$INVOCATION\`"
	echo
	echo "Servers (namespace $NS_S, veth to $NS_C; nftables in each: \`meta l4proto udp numgen random mod 100 < $LOSS_PCT drop\` on input):"
	echo
	echo '```'
	echo "pxed serve --tftp-root TREE --tftp-addr ${ADDR[pxed]}:69 --http-addr \"\" --state-dir STATE${PXED_ARGS:+ $PXED_ARGS}"
	echo "in.tftpd -L -s TREE -u root -a ${ADDR[tftp-hpa]}:69"
	echo '```'
	echo
	echo "Clients (from $CLIENT_ADDR, each under \`timeout $CLIENT_TIMEOUT\`, curl under \`timeout $CURL_TIMEOUT\`):"
	echo
	echo '```'
	echo "tftp -m binary ADDR -c get FILE OUT"
	echo "atftp --option \"blksize $BLKSIZE\" -g -r FILE -l OUT ADDR 69"
	echo "atftp --option \"blksize $BLKSIZE\" --option \"windowsize $WINDOWSIZE\" -g -r FILE -l OUT ADDR 69"
	echo "curl -s --tftp-blksize $BLKSIZE -o OUT tftp://ADDR/FILE"
	echo '```'
}
