#!/usr/bin/env bash
# DHCP throughput benchmark: pxed against Kea (kea-dhcp4, memfile) and ISC
# dhcpd, all in the same run, driven by perfdhcp. Run as root from anywhere:
#
#   bench/dhcp/run.sh                        # 1 round, prints a Markdown report
#   ROUNDS=3 bench/dhcp/run.sh               # 3 rounds, medians reported
#   RATES="1000 2000" SECS=3 bench/dhcp/run.sh   # smoke test
#
# For every rate in RATES (ascending) and every server still in the race, the
# server is started afresh with empty lease storage in a network namespace of
# its own, and perfdhcp, in a second namespace joined to it by a veth pair,
# runs
#
#   perfdhcp -4 -l dhcp-cli -r RATE -R CLIENTS -p SECS -W WAIT_US
#
# A server holds RATE when perfdhcp sent at least MIN_SENT_PCT % of
# RATE x SECS DISCOVERs and at most MAX_DROP_PCT % of the DISCOVERs and at most
# MAX_DROP_PCT % of the REQUESTs went unanswered. A server leaves the race at
# the first rate it does not hold; its figure for the round is the highest
# rate it held. Servers are interleaved per rate (the order rotates every
# round) so that machine noise hits all of them alike.
#
# Environment (defaults in brackets):
#   RATES ["250 500 1000 1500 2000 3000 4000 6000 8000 10000 12000 14000
#          16000 18000 20000 24000 28000 32000"]   DORA exchanges/s to try
#   SECS [10]             perfdhcp -p: seconds each rate is offered
#   CLIENTS [30000]       perfdhcp -R: distinct simulated clients (MACs)
#   WAIT_US [1000000]     perfdhcp -W: after SECS, wait this many µs for the
#                         answers in flight (0: none; then the packets in
#                         flight at the end count as drops)
#   POOL ["198.18.1.0 198.18.255.254"]  the dynamic range; must hold at least
#                         2 x CLIENTS addresses and stay inside 198.18.0.0/16
#   ROUNDS [1]            repeat the whole rate search; medians reported
#   SERVERS ["pxed kea dhcpd"]  which servers to measure
#   MAX_DROP_PCT [1]      drop threshold per exchange, in %
#   MIN_SENT_PCT [97]     perfdhcp must send this % of RATE x SECS DISCOVERs
#   PERFDHCP_ARGS         extra perfdhcp flags, e.g. "-g single"
#   PXED_BIN              use this pxed binary instead of building one
#   PXED_REV              build pxed from this git revision (e.g. HEAD)
#                         instead of the working tree
#   PXED_ARGS             extra `pxed serve` flags
#   PXED_LOG_LEVEL [warn] pxed --log-level (Kea logs at WARN too)
#   PIN [0]               1: pin every server to CPU 0 and perfdhcp to CPU 1
#                         (taskset), so that client and server do not compete
#                         for the same CPU; 0: let the kernel schedule them
#   KEA_THREADS [0]       0: Kea 2.2's default, single-threaded; N: Kea
#                         multi-threading with N threads
#   READY_TIMEOUT [20]    seconds a server may take to answer its first DISCOVER
#   OUT [/tmp/pxed-bench-dhcp.PID]  results: raw perfdhcp output per run,
#                         server logs, configs, results.tsv, report.md
#   LEASE_DIR [/var/tmp]  where the per-run lease storage lives (keep it on a
#                         real disk: fsync on tmpfs is free)
#   KEEP_WORK=1           keep the lease storage of every run (can be GBs)
#
# Network safety: everything happens inside two network namespaces this script
# creates (pxbd-srv-PID, pxbd-cli-PID) and deletes on exit; the veth pair is
# created inside them, addresses come from 198.18.0.0/15 (RFC 2544 benchmark
# space) only, and no interface of the machine is touched. Every server and
# every perfdhcp runs under a bound (timeout(1), or a deadline and kill).
set -euo pipefail
export LC_ALL=C

# The command line to report: the settings given in the environment, then us.
INVOCATION=
for v in RATES SECS CLIENTS WAIT_US POOL ROUNDS SERVERS MAX_DROP_PCT MIN_SENT_PCT PERFDHCP_ARGS \
	PXED_BIN PXED_REV PXED_ARGS PXED_LOG_LEVEL PIN KEA_THREADS READY_TIMEOUT OUT LEASE_DIR KEEP_WORK; do
	[[ -n ${!v:-} ]] && INVOCATION+="$v=$(printf %q "${!v}") "
done
INVOCATION+="bench/dhcp/run.sh"

RATES=${RATES:-"250 500 1000 1500 2000 3000 4000 6000 8000 10000 12000 14000 16000 18000 20000 24000 28000 32000"}
SECS=${SECS:-10}
CLIENTS=${CLIENTS:-30000}
WAIT_US=${WAIT_US:-1000000}
POOL=${POOL:-"198.18.1.0 198.18.255.254"}
ROUNDS=${ROUNDS:-1}
SERVERS=${SERVERS:-"pxed kea dhcpd"}
MAX_DROP_PCT=${MAX_DROP_PCT:-1}
MIN_SENT_PCT=${MIN_SENT_PCT:-97}
PERFDHCP_ARGS=${PERFDHCP_ARGS:-}
PXED_ARGS=${PXED_ARGS:-}
PXED_LOG_LEVEL=${PXED_LOG_LEVEL:-warn}
KEA_THREADS=${KEA_THREADS:-0}
PIN=${PIN:-0}
SRV_PIN=(env) CLI_PIN=(env)
if [[ $PIN == 1 ]]; then
	SRV_PIN=(taskset -c 0) CLI_PIN=(taskset -c 1)
fi
READY_TIMEOUT=${READY_TIMEOUT:-20}
OUT=${OUT:-/tmp/pxed-bench-dhcp.$$}
LEASE_DIR=${LEASE_DIR:-/var/tmp}
KEEP_WORK=${KEEP_WORK:-}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# The lab network. Interface names live inside the namespaces only.
NS_S=pxbd-srv-$$
NS_C=pxbd-cli-$$
SRV_IF=dhcp-srv
CLI_IF=dhcp-cli
SRV_IP=198.18.0.1
CLI_IP=198.18.0.2
PREFIX=16
SUBNET=198.18.0.0
NETMASK=255.255.0.0
PROBE_MAC=02:00:00:00:00:01 # the readiness probe's client; perfdhcp's own MACs start at 00:0c:01:02:03:04

declare -A PID=()     # server name -> pid (also its process group: setsid)
declare -A SKIP=()    # server name -> why it is not measured
declare -A LABEL=([pxed]=pxed [kea]="Kea" [dhcpd]="ISC dhcpd")
CLIENT_PID=           # the perfdhcp (under timeout) running now, if any
NETNS_MADE=
WORK=
FAILED=0              # set when something went wrong that the report shows

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

# --- preflight ---------------------------------------------------------------

[[ $EUID -eq 0 ]] || die "run as root: the script creates network namespaces"
for cmd in ip perfdhcp timeout setsid awk sort; do
	command -v "$cmd" >/dev/null || die "$cmd not found"
done
read -r -a SERVER_LIST <<<"$SERVERS"
read -r -a RATE_LIST <<<"$RATES"
((${#SERVER_LIST[@]} > 0)) || die "SERVERS is empty"
for s in "${SERVER_LIST[@]}"; do
	case $s in
	pxed) [[ -n ${PXED_BIN:-} ]] || command -v go >/dev/null || die "go not found (set PXED_BIN, or leave pxed out of SERVERS)" ;;
	kea) command -v kea-dhcp4 >/dev/null || die "kea-dhcp4 not found (apt-get install kea-dhcp4-server)" ;;
	dhcpd) command -v dhcpd >/dev/null || die "dhcpd not found (apt-get install isc-dhcp-server)" ;;
	*) die "unknown server '$s' in SERVERS (pxed, kea, dhcpd)" ;;
	esac
done
isint() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
isint "$ROUNDS" || die "ROUNDS must be a positive integer"
isint "$SECS" || die "SECS must be a positive integer"
isint "$CLIENTS" || die "CLIENTS must be a positive integer"
isint "$READY_TIMEOUT" || die "READY_TIMEOUT must be a positive integer"
[[ $WAIT_US =~ ^[0-9]+$ ]] || die "WAIT_US must be a non-negative integer"
[[ $KEA_THREADS =~ ^[0-9]+$ ]] || die "KEA_THREADS must be a non-negative integer"
[[ $MAX_DROP_PCT =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "MAX_DROP_PCT must be a number"
[[ $MIN_SENT_PCT =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "MIN_SENT_PCT must be a number"
((${#RATE_LIST[@]} > 0)) || die "RATES is empty"
prev=0
for r in "${RATE_LIST[@]}"; do
	isint "$r" || die "RATES: '$r' is not a positive integer"
	((r > prev)) || die "RATES must be ascending"
	prev=$r
done
ip2int() {
	local IFS=. a b c d
	read -r a b c d <<<"$1"
	echo $(((a << 24) | (b << 16) | (c << 8) | d))
}
read -r POOL_FIRST POOL_LAST POOL_EXTRA <<<"$POOL"
ipre='^198\.18\.([0-9]{1,3})\.([0-9]{1,3})$'
[[ -z ${POOL_EXTRA:-} && $POOL_FIRST =~ $ipre && $POOL_LAST =~ $ipre ]] ||
	die "POOL must be two addresses in 198.18.0.0/16, e.g. \"198.18.1.0 198.18.255.254\""
for a in "$POOL_FIRST" "$POOL_LAST"; do
	IFS=. read -r _ _ o3 o4 <<<"$a"
	((o3 <= 255 && o4 <= 255)) || die "POOL: bad address $a"
done
POOL_SIZE=$(($(ip2int "$POOL_LAST") - $(ip2int "$POOL_FIRST") + 1))
(($(ip2int "$POOL_FIRST") >= $(ip2int 198.18.0.16))) || die "POOL must start at or above 198.18.0.16 (the servers and perfdhcp sit below)"
(($(ip2int "$POOL_LAST") <= $(ip2int 198.18.255.254))) || die "POOL must end at or below 198.18.255.254"
WAIT_ARGS=()
((WAIT_US == 0)) || WAIT_ARGS=(-W "$WAIT_US")
((POOL_SIZE >= 2 * CLIENTS)) || die "POOL holds $POOL_SIZE addresses, fewer than 2 x CLIENTS = $((2 * CLIENTS))"

mkdir -p "$OUT"/raw "$OUT"/logs
[[ -d $LEASE_DIR && -w $LEASE_DIR ]] || die "LEASE_DIR=$LEASE_DIR is not a writable directory"
WORK=$(mktemp -d "$LEASE_DIR/pxed-bench-dhcp.XXXXXX")
RESULTS=$OUT/results.tsv # one line per perfdhcp run, see measure()
: >"$RESULTS"

# --- cleanup -----------------------------------------------------------------

cleanup() {
	local rc=$? s
	trap - EXIT INT TERM
	if [[ -n $CLIENT_PID ]]; then
		kill -TERM "$CLIENT_PID" 2>/dev/null || true # timeout passes it on to perfdhcp
		wait "$CLIENT_PID" 2>/dev/null || true
	fi
	for s in "${!PID[@]}"; do stop_server "$s"; done
	if [[ -n $NETNS_MADE ]]; then
		ip netns del "$NS_S" 2>/dev/null || true
		ip netns del "$NS_C" 2>/dev/null || true
	fi
	if [[ -n $WORK && -d $WORK ]]; then
		if [[ -n $KEEP_WORK ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
	fi
	((rc == 0)) || log "raw results so far: $OUT"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- pxed --------------------------------------------------------------------

PXED=
PXED_DESC=
if [[ " ${SERVER_LIST[*]} " == *" pxed "* ]]; then
	build_pxed 'SERVERS="kea dhcpd" leaves pxed out'
	mkdir -p "$WORK/tftp-root" # pxed wants a boot tree even with TFTP and HTTP off
fi

# --- network -----------------------------------------------------------------

dhcp_netns_up
log "namespaces $NS_S ($SRV_IF $SRV_IP/$PREFIX) and $NS_C ($CLI_IF $CLI_IP/$PREFIX)"

# --- configuration -----------------------------------------------------------

DHCPD_CONF=$OUT/dhcpd.conf
dhcpd_conf bench/dhcp/run.sh >"$DHCPD_CONF"
kea_config "LEASE_DIR/RUN/kea-leases4.csv" "OUT/logs/kea-RUN.log" >"$OUT/kea-dhcp4.json"

# --- servers -----------------------------------------------------------------

# start_server NAME RUNDIR LOG: start NAME in the server namespace with empty
# lease storage in RUNDIR. Each server runs in its own session (setsid execs
# `ip netns exec`, which execs the server: the pid is the server's and its
# process group), so stop_server ends it and anything it started.
start_server() {
	local name=$1 dir=$2 logf=$3
	mkdir -p "$dir"
	case $name in
	pxed)
		# shellcheck disable=SC2086 # PXED_ARGS is a list of flags
		setsid ip netns exec "$NS_S" "${SRV_PIN[@]}" "$PXED" serve --dhcpd-conf "$DHCPD_CONF" --interface "$SRV_IF" \
			--state-dir "$dir/state" --tftp-root "$WORK/tftp-root" --tftp-addr '' --http-addr '' \
			--log-level "$PXED_LOG_LEVEL" $PXED_ARGS </dev/null >"$logf" 2>&1 &
		;;
	kea)
		kea_config "$dir/kea-leases4.csv" "${logf%.log}.kea.log" >"$dir/kea-dhcp4.json"
		KEA_PIDFILE_DIR=$dir KEA_LOCKFILE_DIR=$dir \
			setsid ip netns exec "$NS_S" "${SRV_PIN[@]}" kea-dhcp4 -c "$dir/kea-dhcp4.json" </dev/null >"$logf" 2>&1 &
		;;
	dhcpd)
		: >"$dir/dhcpd.leases"
		setsid ip netns exec "$NS_S" "${SRV_PIN[@]}" dhcpd -4 -f -cf "$DHCPD_CONF" -lf "$dir/dhcpd.leases" -pf "$dir/dhcpd.pid" \
			"$SRV_IF" </dev/null >"$logf" 2>&1 &
		;;
	esac
	PID[$name]=$!
}

# lease_bytes NAME RUNDIR: size of the durable lease storage the run left.
lease_bytes() {
	case $1 in
	pxed) du -sb "$2/state" 2>/dev/null | awk '{ print $1 }' ;;
	kea) stat -c %s "$2/kea-leases4.csv" 2>/dev/null ;;
	dhcpd) stat -c %s "$2/dhcpd.leases" 2>/dev/null ;;
	esac
}

# --- perfdhcp ----------------------------------------------------------------

# run_client and probe are bench/lib.sh's.

# wait_ready NAME: 0 when NAME answers, 1 when it does not within
# READY_TIMEOUT seconds, 2 when it exited.
wait_ready() {
	local name=$1 deadline=$((SECONDS + READY_TIMEOUT)) i
	for ((i = 0; i < READY_TIMEOUT * 5 && SECONDS < deadline; i++)); do
		kill -0 "${PID[$name]}" 2>/dev/null || return 2
		probe && return 0
		sleep 0.2
	done
	kill -0 "${PID[$name]}" 2>/dev/null || return 2
	return 1
}

# --- one measurement ---------------------------------------------------------

# measure ROUND RATE NAME: fresh server, perfdhcp at RATE, verdict. Appends to
# RESULTS, tab-separated:
#   round rate server verdict do_sent do_recv do_loss% ra_sent ra_recv ra_loss% ack/s lease_bytes raw
# verdict: held | drops | client (no drops, but perfdhcp sent < MIN_SENT_PCT) | died |
#          no-answer (never answered the probe) | error (no perfdhcp report).
# Loss = max(perfdhcp drops, sent - received), in % of sent.
measure() {
	local round=$1 rate=$2 name=$3 run dir logf raw stats rc=0 verdict lb=0
	local do_s=0 do_r=0 do_d=0 ra_s=0 ra_r=0 ra_d=0
	run=r$round-$rate-$name
	dir=$WORK/$run
	logf=$OUT/logs/$run.log
	raw=raw/$run.txt
	start_server "$name" "$dir" "$logf"
	wait_ready "$name" || rc=$?
	if ((rc == 0)); then
		# shellcheck disable=SC2086 # PERFDHCP_ARGS is a list of flags
		run_client $((SECS + WAIT_US / 1000000 + 30)) "$OUT/$raw" \
			-4 -l "$CLI_IF" -r "$rate" -R "$CLIENTS" -p "$SECS" "${WAIT_ARGS[@]}" $PERFDHCP_ARGS
		if ! kill -0 "${PID[$name]}" 2>/dev/null; then
			verdict=died
		fi
		if stats=$(parse_perfdhcp "$OUT/$raw"); then
			read -r do_s do_r do_d ra_s ra_r ra_d <<<"$stats"
			verdict=${verdict:-ok}
		else
			verdict=${verdict:-error}
		fi
	elif ((rc == 2)); then
		verdict=died
		: >"$OUT/$raw"
	else
		verdict=no-answer
		: >"$OUT/$raw"
	fi
	stop_server "$name"
	lb=$(lease_bytes "$name" "$dir")
	[[ -n $KEEP_WORK ]] || rm -rf "$dir"
	awk -v OFS='\t' -v round="$round" -v rate="$rate" -v name="$name" -v verdict="$verdict" \
		-v do_s="$do_s" -v do_r="$do_r" -v do_d="$do_d" -v ra_s="$ra_s" -v ra_r="$ra_r" -v ra_d="$ra_d" \
		-v secs="$SECS" -v maxdrop="$MAX_DROP_PCT" -v minsent="$MIN_SENT_PCT" -v lb="${lb:-0}" -v raw="$raw" '
		function loss(s, r, d) { if (s - r > d) d = s - r; return s > 0 ? 100 * d / s : (r > 0 ? 0 : 100) }
		BEGIN {
			dl = loss(do_s, do_r, do_d); rl = (do_r > 0 ? loss(ra_s, ra_r, ra_d) : 100)
			if (verdict == "ok") {
				if (dl > maxdrop || rl > maxdrop) verdict = "drops"
				else if (do_s < minsent / 100 * rate * secs) verdict = "client"
				else verdict = "held"
			}
			print round, rate, name, verdict, do_s, do_r, sprintf("%.3f", dl), ra_s, ra_r, sprintf("%.3f", rl),
				sprintf("%.0f", ra_r / secs), lb, raw
		}' >>"$RESULTS"
	tail -n 1 "$RESULTS" | awk -F'\t' '{ printf "  %-5s @ %6d/s: %-9s DISCOVER %s/%s (loss %s%%), REQUEST %s/%s (loss %s%%), %s ACK/s, leases %s B\n",
		$3, $2, $4, $6, $5, $7, $9, $8, $10, $11, $12 }' >&2
	[[ $(tail -n 1 "$RESULTS" | cut -f4) == held ]]
}

# --- pxed preflight ----------------------------------------------------------

# pxed's DHCP server is under construction: if `pxed serve` says DHCP is not
# implemented (and exits, having nothing else to serve), leave it out.
if [[ -n $PXED ]]; then
	dir=$WORK/preflight-pxed
	logf=$OUT/logs/preflight-pxed.log
	start_server pxed "$dir" "$logf"
	rc=0
	wait_ready pxed || rc=$?
	notimpl='DHCP (is )?not (yet )?implemented'
	if ((rc != 0)) && grep -qiE "$notimpl" "$logf"; then
		SKIP[pxed]="\`pxed serve\` says DHCP is not implemented: $(grep -iE -m1 "$notimpl" "$logf" | cut -c1-200)"
	elif ((rc == 2)); then
		SKIP[pxed]="\`pxed serve\` exited at startup: $( [[ -s $logf ]] && tail -n 1 "$logf" | cut -c1-300 || echo "(no output)")"
		FAILED=1
	elif ((rc == 1)); then
		SKIP[pxed]="pxed did not answer a DISCOVER within $READY_TIMEOUT s"
		FAILED=1
	fi
	stop_server pxed
	rm -rf "$dir"
	[[ -n ${SKIP[pxed]:-} ]] && log "SKIPPING pxed: ${SKIP[pxed]} (log: $logf)"
fi

MEASURED=()
for s in "${SERVER_LIST[@]}"; do
	[[ -n ${SKIP[$s]:-} ]] || MEASURED+=("$s")
done
((${#MEASURED[@]} > 0)) || die "no server left to measure"

# --- run ---------------------------------------------------------------------

log "servers: ${MEASURED[*]}; rates: ${RATE_LIST[*]}; $SECS s each; $CLIENTS clients; pool $POOL ($POOL_SIZE addresses); $ROUNDS round(s); results in $OUT"
BEST=$OUT/best.tsv # round server best_rate stop_rate stop_verdict
: >"$BEST"
for ((r = 1; r <= ROUNDS; r++)); do
	order=()
	for ((i = 0; i < ${#MEASURED[@]}; i++)); do
		order+=("${MEASURED[$(((i + r - 1) % ${#MEASURED[@]}))]}")
	done
	log "round $r/$ROUNDS, server order: ${order[*]}"
	declare -A best=() stop=()
	active=("${order[@]}")
	for rate in "${RATE_LIST[@]}"; do
		((${#active[@]} > 0)) || break
		still=()
		for s in "${active[@]}"; do
			if measure "$r" "$rate" "$s"; then
				best[$s]=$rate
				still+=("$s")
			else
				stop[$s]="$rate $(tail -n 1 "$RESULTS" | cut -f4)"
			fi
		done
		active=("${still[@]}")
	done
	for s in "${order[@]}"; do
		read -r sr sv <<<"${stop[$s]:-- all-held}"
		printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$s" "${best[$s]:-0}" "$sr" "$sv" >>"$BEST"
	done
	unset best stop
done

# --- report ------------------------------------------------------------------

# median reads numbers, one a line, and prints their median (empty if none);
# "median lower" prints the lower middle value of an even count instead of the
# mean of the two, so that a median rate is a rate that was measured.
median() {
	sort -g | awk -v lower="${1:-}" '{ v[NR] = $1 } END {
		if (NR == 0) exit
		if (NR % 2) print v[(NR + 1) / 2]
		else if (lower != "") print v[NR / 2]
		else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# field_at SERVER RATE COLUMN: that column of the held runs of SERVER at RATE
# in the rounds whose best rate was RATE.
field_at() {
	awk -F'\t' -v s="$1" -v b="$2" -v c="$3" 'NR == FNR { if ($2 == s) best[$1] = $3; next }
		$3 == s && $2 == b && $4 == "held" && best[$1] == b { print $c }' "$BEST" "$RESULTS"
}
ratio() { # a b -> a/b with 2 decimals, or "-"
	if [[ -n $1 && -n $2 && $2 != 0 && $1 != 0 ]]; then awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; else echo -; fi
}
stop_reason() { # "RATE VERDICT" -> words
	local sr sv
	read -r sr sv <<<"$1"
	case $sv in
	all-held) echo "held every rate: raise RATES" ;;
	drops) echo "$sr/s: > $MAX_DROP_PCT % dropped" ;;
	client) echo "$sr/s: perfdhcp sent < $MIN_SENT_PCT % of the rate" ;;
	died) echo "$sr/s: server died" ;;
	no-answer) echo "$sr/s: no answer within $READY_TIMEOUT s of start" ;;
	error) echo "$sr/s: no perfdhcp report" ;;
	*) echo "$sr/s: $sv" ;;
	esac
}

declare -A MED_BEST=() MED_ACK=()
version_of() {
	case $1 in
	pxed) "$PXED" version 2>/dev/null | head -n 1 | sed 's/^pxed //' | grep . || echo '?' ;;
	kea) kea-dhcp4 -v 2>/dev/null | head -n 1 ;;
	dhcpd) dhcpd --version 2>&1 | head -n 1 | sed 's/^isc-dhcpd-//' ;;
	esac
}
{
	cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
	fs=$(df --output=fstype "$WORK" 2>/dev/null | tail -n 1 || echo '?')
	echo "## DHCP (bench/dhcp/run.sh) — $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "- Machine: \`nproc\` $(nproc), ${cpu:-unknown CPU}, kernel $(uname -r)."
	echo "- perfdhcp $(perfdhcp -v 2>&1 | head -n 1 | sed 's/^VERSION: //'); Kea kea-dhcp4 $(command -v kea-dhcp4 >/dev/null && version_of kea || echo '-')" \
		"(memfile, persist, lfc-interval 0, $( ((KEA_THREADS > 0)) && echo "multi-threading, $KEA_THREADS threads" || echo "single-threaded")); ISC dhcpd $(command -v dhcpd >/dev/null && version_of dhcpd || echo '-');" \
		"pxed $([[ -n $PXED ]] && echo "$(version_of pxed), $PXED_DESC" || echo "not built")."
	echo "- Lease storage: $fs under $LEASE_DIR; ISC dhcpd fsyncs its lease file per commit, Kea memfile appends without fsync, pxed group-commits to bbolt with fsync. /dev/log $([[ -S /dev/log ]] && echo "exists (ISC dhcpd logs every packet to syslog)" || echo "absent (ISC dhcpd's per-packet syslog messages go nowhere)")."
	echo "- CPUs: $([[ $PIN == 1 ]] && echo "pinned: every server on CPU 0, perfdhcp on CPU 1 (taskset)" || echo "not pinned: servers and perfdhcp share both CPUs as the kernel schedules them")."
	echo "- Load: $SECS s per rate, $CLIENTS clients, pool $POOL_FIRST–$POOL_LAST ($POOL_SIZE addresses), $ROUNDS round(s); a rate is held with ≤ $MAX_DROP_PCT % unanswered DISCOVERs and REQUESTs and ≥ $MIN_SENT_PCT % of the DISCOVERs sent."
	echo "- Command: \`$INVOCATION\` (as root)."
	for s in "${!SKIP[@]}"; do echo "- **$s not measured**: ${SKIP[$s]}"; done
	echo
	echo "| Server | Best rate held (DORA/s) | ACK/s at that rate | DISCOVER loss % | REQUEST loss % | Stopped at | Rounds |"
	echo "|---|---:|---:|---:|---:|---|---:|"
	for s in "${SERVER_LIST[@]}"; do
		if [[ -n ${SKIP[$s]:-} ]]; then
			echo "| ${LABEL[$s]} | not measured | - | - | - | - | 0 |"
			continue
		fi
		# The median round: its best rate (the lower median for an even number
		# of rounds), the median ACK/s and loss of the rounds with that best
		# rate, and the stop reason of the first of them.
		b=$(awk -F'\t' -v s="$s" '$2 == s { print $3 }' "$BEST" | median lower)
		a=$(field_at "$s" "$b" 11 | median | awk '{ printf "%.0f", $1 }')
		dl=$(field_at "$s" "$b" 7 | median | awk '{ printf "%.2f", $1 }')
		rl=$(field_at "$s" "$b" 10 | median | awk '{ printf "%.2f", $1 }')
		MED_BEST[$s]=$b
		MED_ACK[$s]=$a
		st=$(awk -F'\t' -v s="$s" -v b="$b" '$2 == s && $3 == b { print $4, $5; exit }' "$BEST")
		bs=$b
		[[ $b == 0 ]] && bs="< ${RATE_LIST[0]}"
		printf '| %s | %s | %s | %s | %s | %s | %s |\n' "${LABEL[$s]}" "$bs" "${a:--}" "${dl:--}" "${rl:--}" \
			"$(stop_reason "$st")" "$(awk -F'\t' -v s="$s" '$2 == s' "$BEST" | wc -l)"
	done
	echo
	echo "- pxed ÷ Kea: best rate $(ratio "${MED_BEST[pxed]:-}" "${MED_BEST[kea]:-}"), ACK/s $(ratio "${MED_ACK[pxed]:-}" "${MED_ACK[kea]:-}") (target ≥ 1.5);" \
		"pxed ÷ ISC dhcpd: best rate $(ratio "${MED_BEST[pxed]:-}" "${MED_BEST[dhcpd]:-}"), ACK/s $(ratio "${MED_ACK[pxed]:-}" "${MED_ACK[dhcpd]:-}")."
	echo "- Best rate: the highest offered rate held (median over rounds; the lower one of the middle two for an even number of rounds); the search goes up RATES and a server leaves at the first rate it does not hold."
	if ((ROUNDS > 1)); then
		for s in "${MEASURED[@]}"; do
			line=
			while IFS=$'\t' read -r br bs bb bsr bsv; do
				[[ $bs == "$s" ]] || continue
				((bb > 0)) || bb="< ${RATE_LIST[0]}"
				line+="${line:+; }r$br $bb ($(stop_reason "$bsr $bsv"))"
			done <"$BEST"
			echo "- ${LABEL[$s]} per round: $line."
		done
	fi
	echo "- ACK/s: REQUEST-ACK exchanges completed ÷ $SECS s at that rate (4-way exchanges/s achieved); loss: max(perfdhcp drops, sent − received) ÷ sent."
	echo
	echo "Every run (round, offered rate, server: verdict, DISCOVERs answered/sent and loss %, REQUESTs answered/sent and loss %, ACK/s, lease storage bytes after the run):"
	echo
	echo '```'
	awk -F'\t' '{ printf "r%s %6d/s %-5s %-9s DO %7d/%-7d %7.3f%%  RA %7d/%-7d %7.3f%%  %6d ACK/s  %10d B\n",
		$1, $2, $3, $4, $6, $5, $7, $9, $8, $10, $11, $12 }' "$RESULTS"
	echo '```'
	echo
	echo "Commands (in namespace $NS_S: the servers; in $NS_C: perfdhcp; DIR: fresh per run):"
	echo
	echo '```'
	echo "perfdhcp -4 -l $CLI_IF -r RATE -R $CLIENTS -p $SECS${WAIT_ARGS[*]:+ ${WAIT_ARGS[*]}}${PERFDHCP_ARGS:+ $PERFDHCP_ARGS}"
	[[ -n $PXED ]] && echo "pxed serve --dhcpd-conf dhcpd.conf --interface $SRV_IF --state-dir DIR/state --tftp-root EMPTYDIR --tftp-addr '' --http-addr '' --log-level $PXED_LOG_LEVEL${PXED_ARGS:+ $PXED_ARGS}"
	echo "KEA_PIDFILE_DIR=DIR KEA_LOCKFILE_DIR=DIR kea-dhcp4 -c DIR/kea-dhcp4.json"
	echo "dhcpd -4 -f -cf dhcpd.conf -lf DIR/dhcpd.leases -pf DIR/dhcpd.pid $SRV_IF"
	echo "# readiness probe before each run (no lease: -i stops at the OFFER):"
	echo "perfdhcp -4 -l $CLI_IF -b mac=$PROBE_MAC -R 1 -r 10 -p 1 -i"
	echo '```'
	echo
	echo "dhcpd.conf (ISC dhcpd and pxed):"
	echo
	echo '```'
	cat "$DHCPD_CONF"
	echo '```'
	echo
	echo "kea-dhcp4.json:"
	echo
	echo '```json'
	cat "$OUT/kea-dhcp4.json"
	echo '```'
} | tee "$OUT/report.md"

log "report: $OUT/report.md; raw perfdhcp output: $OUT/raw"
bad=$(awk -F'\t' '$4 == "died" || $4 == "error" || $4 == "no-answer"' "$RESULTS" | wc -l)
if ((bad > 0 || FAILED)); then
	log "$bad run(s) ended with a dead, silent or unparsable server or client$( ((FAILED)) && echo "; pxed could not be measured")"
	exit 1
fi
