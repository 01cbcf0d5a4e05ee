#!/usr/bin/env bash
# DHCP allocation as the pool fills: pxed against Kea (kea-dhcp4, memfile, as
# bench/dhcp runs it) in the same run, driven by perfdhcp. Run as root:
#
#   bench/poolfill/run.sh                     # prints a Markdown report
#   FILLS="50" RATES="1000 2000" MODES=fill bench/poolfill/run.sh   # smoke test
#
# Two measurements (MODES):
#
# fill: for every utilisation in FILLS (% of the pool), both servers start
#   from the same pre-filled lease storage: bench/poolfill/seed binds that
#   many addresses, spread over the pool, to as many clients that perfdhcp
#   never uses, and writes them as pxed's bbolt file and as Kea's CSV lease
#   file. For every rate in RATES (ascending; a server leaves the search at
#   the first rate it does not hold), each server is started on a copy of
#   that storage and perfdhcp brings NEW clients:
#
#     perfdhcp -4 -l dhcp-cli -r RATE -R 1000000 -s SEED -n N -p SECS -W WAIT_US
#
#   N = min(RATE x SECS, NEW_PCT % of the free addresses): at 90 % of a
#   /16 that is a few thousand exchanges, so that the pool never runs dry
#   under the measurement and every exchange allocates an address (one in
#   a million clients comes twice). The rate is held with <= MAX_DROP_PCT %
#   of the DISCOVERs and of the REQUESTs unanswered and >= MIN_SENT_PCT % of
#   N sent.
#
# reuse: the issue's run. Each server is started once, with empty storage,
#   and perfdhcp runs every rate of REUSE_RATES in turn against it, with no
#   restart in between, from one population of REUSE_CLIENTS clients:
#
#     perfdhcp -4 -l dhcp-cli -r RATE -R REUSE_CLIENTS -p SECS -W WAIT_US
#
#   The pool fills as the clients come back; from the second rate on most
#   exchanges are clients that are bound already (DISCOVER answered with
#   their binding, REQUEST renewing it). It reports every rate, and the
#   highest held before the first that was not.
#
# Environment (defaults in brackets):
#   MODES ["fill reuse"]   which measurements
#   FILLS ["10 50 90"]     utilisations to pre-fill to, % of the pool
#   FILL_LAYOUT [random]   seed -layout: random (spread) or first (lowest)
#   RATES ["1000 2000 3000 4000 5000 6000 7000 8000 9000 10000 12000 14000"]
#   NEW_PCT [50]           fill mode: at most this % of the free addresses
#                          are handed out by one measurement
#   REUSE_RATES ["250 500 1000 1500 2000 3000 4000 5000 6000 7000 8000 9000 10000"]
#   REUSE_CLIENTS [60000]  reuse mode: perfdhcp -R
#   SECS [5]               perfdhcp -p: seconds each rate is offered at most
#   WAIT_US [1000000]      perfdhcp -W
#   SEED [1]               perfdhcp -s: the same clients for every server
#   POOL ["198.18.1.0 198.18.255.254"]  the dynamic range, in 198.18.0.0/16
#   SERVERS ["pxed kea"]   pxed, kea, and pxed2 (a second pxed column, below)
#   MAX_DROP_PCT [1], MIN_SENT_PCT [97]
#   PXED_BIN / PXED_REV    as in bench/dhcp (bench/lib.sh build_pxed)
#   PXED_EXTRA_ARGS        extra `pxed serve` flags of the pxed column
#   PXED2_ARGS             `pxed serve` flags of the pxed2 column, e.g. an
#                          etcd store: "--store etcd://H:P,H:P,H:P
#                          --store-prefix /poolfill/{run}/" ({run} is
#                          replaced by a name unique to the run: every run
#                          starts from an empty prefix)
#   PXED2_BIN              the pxed binary of the pxed2 column (default: the
#                          pxed column's), to compare two builds in one run
#   PXED2_LABEL [pxed (2)] its name in the report
#   PXED2_PREFILL          fill mode with pxed2: a command (bash -c) that
#                          copies the pre-fill into pxed2's store, with
#                          {seed} replaced by the seeded bbolt file and {run}
#                          as above, e.g. "{pxed} store migrate --from
#                          bolt:{seed} --to etcd://… --store-prefix
#                          /poolfill/{run}/" ({pxed}: the pxed binary).
#                          Without it pxed2 starts on a copy of the bbolt
#                          pre-fill, as the pxed column does.
#   PERF [0]               1: `perf record -g` pxed during every run of the
#                          reuse mode and of the highest fill, and write
#                          the top of `perf report` to OUT/perf/
#   PIN [0]                1: servers on CPU 0, perfdhcp on CPU 1 (taskset)
#   KEA_THREADS [0]        0: Kea single-threaded (its default)
#   PXED_LOG_LEVEL [warn], READY_TIMEOUT [30]
#   OUT [/tmp/pxed-bench-poolfill.PID]   raw output, logs, results.tsv, report.md
#   LEASE_DIR [/var/tmp]   lease storage (a real disk: fsync on tmpfs is free)
#
# Network safety: as bench/dhcp, two namespaces (pxpf-srv-PID, pxpf-cli-PID)
# joined by a veth pair created inside them, addresses from 198.18.0.0/15
# only; both are deleted on exit. Every server and perfdhcp runs under a
# bound (timeout(1), or a deadline and kill).
set -euo pipefail
export LC_ALL=C

INVOCATION=
for v in MODES FILLS FILL_LAYOUT RATES NEW_PCT REUSE_RATES REUSE_CLIENTS SECS WAIT_US SEED POOL SERVERS \
	MAX_DROP_PCT MIN_SENT_PCT PXED_BIN PXED_REV PXED_EXTRA_ARGS PXED2_ARGS PXED2_BIN PXED2_LABEL PXED2_PREFILL PERF PIN \
	KEA_THREADS PXED_LOG_LEVEL READY_TIMEOUT OUT LEASE_DIR; do
	[[ -n ${!v:-} ]] && INVOCATION+="$v=$(printf %q "${!v}") "
done
INVOCATION+="bench/poolfill/run.sh"

MODES=${MODES:-"fill reuse"}
FILLS=${FILLS:-"10 50 90"}
FILL_LAYOUT=${FILL_LAYOUT:-random}
RATES=${RATES:-"1000 2000 3000 4000 5000 6000 7000 8000 9000 10000 12000 14000"}
NEW_PCT=${NEW_PCT:-50}
REUSE_RATES=${REUSE_RATES:-"250 500 1000 1500 2000 3000 4000 5000 6000 7000 8000 9000 10000"}
REUSE_CLIENTS=${REUSE_CLIENTS:-60000}
SECS=${SECS:-5}
WAIT_US=${WAIT_US:-1000000}
SEED=${SEED:-1}
POOL=${POOL:-"198.18.1.0 198.18.255.254"}
SERVERS=${SERVERS:-"pxed kea"}
MAX_DROP_PCT=${MAX_DROP_PCT:-1}
MIN_SENT_PCT=${MIN_SENT_PCT:-97}
PXED_EXTRA_ARGS=${PXED_EXTRA_ARGS:-}
PXED2_ARGS=${PXED2_ARGS:-}
PXED2_BIN=${PXED2_BIN:-}
PXED2_LABEL=${PXED2_LABEL:-"pxed (2)"}
PXED2_PREFILL=${PXED2_PREFILL:-}
PERF=${PERF:-0}
PIN=${PIN:-0}
KEA_THREADS=${KEA_THREADS:-0}
PXED_LOG_LEVEL=${PXED_LOG_LEVEL:-warn}
READY_TIMEOUT=${READY_TIMEOUT:-30}
OUT=${OUT:-/tmp/pxed-bench-poolfill.$$}
LEASE_DIR=${LEASE_DIR:-/var/tmp}
SRV_PIN=(env) CLI_PIN=(env)
if [[ $PIN == 1 ]]; then
	SRV_PIN=(taskset -c 0) CLI_PIN=(taskset -c 1)
fi

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

NS_S=pxpf-srv-$$
NS_C=pxpf-cli-$$
SRV_IF=dhcp-srv
CLI_IF=dhcp-cli
SRV_IP=198.18.0.1
CLI_IP=198.18.0.2
PREFIX=16
SUBNET=198.18.0.0
NETMASK=255.255.0.0
PROBE_MAC=02:00:00:00:00:01 # the readiness probe; the pre-fill is 02:f1:…, perfdhcp 00:0c:01:02:03:04 on
METRICS_PORT=9464           # pxed's /metrics, on the server namespace's loopback
CLK_TCK=$(getconf CLK_TCK)

declare -A PID=()
declare -A LABEL=([pxed]=pxed [kea]=Kea [pxed2]="$PXED2_LABEL")
CLIENT_PID=
PERF_PID=
NETNS_MADE=
WORK=

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

# --- preflight ---------------------------------------------------------------

[[ $EUID -eq 0 ]] || die "run as root: the script creates network namespaces"
for cmd in ip perfdhcp timeout setsid awk sort cp; do
	command -v "$cmd" >/dev/null || die "$cmd not found"
done
[[ $PERF == 1 ]] && { command -v perf >/dev/null || die "PERF=1: perf not found"; }
read -r -a SERVER_LIST <<<"$SERVERS"
read -r -a MODE_LIST <<<"$MODES"
read -r -a FILL_LIST <<<"$FILLS"
read -r -a RATE_LIST <<<"$RATES"
read -r -a REUSE_LIST <<<"$REUSE_RATES"
isint() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
ascending() { # NAME values...: positive integers, ascending
	local name=$1 prev=0 v
	shift
	(($# > 0)) || die "$name is empty"
	for v in "$@"; do
		isint "$v" || die "$name: '$v' is not a positive integer"
		((v > prev)) || die "$name must be ascending"
		prev=$v
	done
}
((${#SERVER_LIST[@]} > 0)) || die "SERVERS is empty"
for s in "${SERVER_LIST[@]}"; do
	case $s in
	pxed) ;;
	pxed2)
		[[ -n $PXED2_ARGS || -n $PXED2_BIN ]] || die "SERVERS has pxed2 but neither PXED2_ARGS nor PXED2_BIN"
		[[ -z $PXED2_BIN || -x $PXED2_BIN ]] || die "PXED2_BIN=$PXED2_BIN is not executable"
		;;
	kea) command -v kea-dhcp4 >/dev/null || die "kea-dhcp4 not found (apt-get install kea-dhcp4-server)" ;;
	*) die "unknown server '$s' in SERVERS (pxed, pxed2, kea)" ;;
	esac
done
for m in "${MODE_LIST[@]}"; do
	[[ $m == fill || $m == reuse ]] || die "unknown mode '$m' in MODES (fill, reuse)"
done
ascending FILLS "${FILL_LIST[@]}"
((FILL_LIST[-1] < 100)) || die "FILLS must stay below 100"
ascending RATES "${RATE_LIST[@]}"
ascending REUSE_RATES "${REUSE_LIST[@]}"
for v in SECS REUSE_CLIENTS NEW_PCT SEED READY_TIMEOUT; do isint "${!v}" || die "$v must be a positive integer"; done
((NEW_PCT <= 100)) || die "NEW_PCT must be at most 100"
[[ $WAIT_US =~ ^[0-9]+$ ]] || die "WAIT_US must be a non-negative integer"
[[ $FILL_LAYOUT == random || $FILL_LAYOUT == first ]] || die "FILL_LAYOUT must be random or first"
ip2int() {
	local IFS=. a b c d
	read -r a b c d <<<"$1"
	echo $(((a << 24) | (b << 16) | (c << 8) | d))
}
read -r POOL_FIRST POOL_LAST POOL_EXTRA <<<"$POOL"
ipre='^198\.18\.([0-9]{1,3})\.([0-9]{1,3})$'
[[ -z ${POOL_EXTRA:-} && $POOL_FIRST =~ $ipre && $POOL_LAST =~ $ipre ]] ||
	die "POOL must be two addresses in 198.18.0.0/16"
POOL_SIZE=$(($(ip2int "$POOL_LAST") - $(ip2int "$POOL_FIRST") + 1))
(($(ip2int "$POOL_FIRST") >= $(ip2int 198.18.0.16) && POOL_SIZE > 0)) ||
	die "POOL must start at or above 198.18.0.16 and end after it starts"
((REUSE_CLIENTS <= POOL_SIZE)) || die "REUSE_CLIENTS ($REUSE_CLIENTS) exceeds the pool ($POOL_SIZE)"
WAIT_ARGS=()
((WAIT_US == 0)) || WAIT_ARGS=(-W "$WAIT_US")

mkdir -p "$OUT"/raw "$OUT"/logs
[[ $PERF == 1 ]] && mkdir -p "$OUT/perf"
[[ -d $LEASE_DIR && -w $LEASE_DIR ]] || die "LEASE_DIR=$LEASE_DIR is not a writable directory"
WORK=$(mktemp -d "$LEASE_DIR/pxed-bench-poolfill.XXXXXX")
# mode level rate server verdict do_s do_r do_loss% ra_s ra_r ra_loss% exchanges raw
#   cpu_us/exchange commits commit_ms records/commit perfdhcp_cpu_s
#   "rcvbuf_drops_server rcvbuf_drops_client"
#   "discovers/offers requests/acks" as pxed counted them
RESULTS=$OUT/results.tsv
LOGS=$OUT/logs # tail_logs (bench/lib.sh)
: >"$RESULTS"

cleanup() {
	local rc=$? s
	trap - EXIT INT TERM
	if [[ -n $CLIENT_PID ]]; then
		kill -TERM "$CLIENT_PID" 2>/dev/null || true
		wait "$CLIENT_PID" 2>/dev/null || true
	fi
	[[ -z $PERF_PID ]] || perf_stop
	for s in "${!PID[@]}"; do stop_server "$s"; done
	if [[ -n $NETNS_MADE ]]; then
		ip netns del "$NS_S" 2>/dev/null || true
		ip netns del "$NS_C" 2>/dev/null || true
	fi
	[[ -n $WORK && -d $WORK ]] && rm -rf "$WORK"
	((rc == 0)) || { tail_logs; log "raw results so far: $OUT"; }
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build -------------------------------------------------------------------

build_pxed 'SERVERS=kea leaves pxed out'
mkdir -p "$WORK/tftp-root"
PXED2=
if [[ -n $PXED2_BIN ]]; then
	cp "$PXED2_BIN" "$WORK/bin/pxed2"
	PXED2=$WORK/bin/pxed2
fi
(cd "$REPO" && go build -o "$WORK/bin/seed" ./bench/poolfill/seed) || die "building bench/poolfill/seed failed"

dhcp_netns_up
log "namespaces $NS_S ($SRV_IF $SRV_IP/$PREFIX) and $NS_C ($CLI_IF $CLI_IP/$PREFIX)"
DHCPD_CONF=$OUT/dhcpd.conf
dhcpd_conf bench/poolfill/run.sh >"$DHCPD_CONF"
kea_config "LEASE_DIR/RUN/kea-leases4.csv" "OUT/logs/RUN.kea.log" >"$OUT/kea-dhcp4.json"

# --- servers -----------------------------------------------------------------

# start_server NAME RUNDIR LOG RUNID: start NAME in the server namespace on
# the lease storage in RUNDIR (state/leases.db for pxed, kea-leases4.csv for
# Kea: pre-filled or absent); RUNID names pxed2's store ({run}).
start_server() {
	local name=$1 dir=$2 logf=$3 id=$4 args bin=$PXED
	mkdir -p "$dir/state"
	case $name in
	pxed | pxed2)
		args=$PXED_EXTRA_ARGS
		if [[ $name == pxed2 ]]; then
			args=${PXED2_ARGS//\{run\}/$id}
			bin=${PXED2:-$PXED}
		fi
		# shellcheck disable=SC2086 # the args are lists of flags
		setsid ip netns exec "$NS_S" "${SRV_PIN[@]}" "$bin" serve --dhcpd-conf "$DHCPD_CONF" --interface "$SRV_IF" \
			--state-dir "$dir/state" --tftp-root "$WORK/tftp-root" --tftp-addr '' --http-addr '' \
			--metrics-addr "127.0.0.1:$METRICS_PORT" --log-level "$PXED_LOG_LEVEL" $args </dev/null >"$logf" 2>&1 &
		;;
	kea)
		kea_config "$dir/kea-leases4.csv" "${logf%.log}.kea.log" >"$dir/kea-dhcp4.json"
		KEA_PIDFILE_DIR=$dir KEA_LOCKFILE_DIR=$dir \
			setsid ip netns exec "$NS_S" "${SRV_PIN[@]}" kea-dhcp4 -c "$dir/kea-dhcp4.json" </dev/null >"$logf" 2>&1 &
		;;
	esac
	PID[$name]=$!
}

# children_cpu FILE: the CPU seconds (user + system) of every child process
# this shell has waited for so far, from FILE, the output of bash's times
# run in this shell (in a subshell the count starts at zero).
children_cpu() {
	awk 'NR == 2 { n = 0; for (i = 1; i <= 2; i++) { split($i, p, "m"); n += 60 * p[1] + p[2] }; print n }' "$1"
}

# rcvbuf_errors NS: UDP datagrams the kernel of namespace NS dropped so far
# because a socket's receive buffer was full (RcvbufErrors, /proc/net/snmp).
rcvbuf_errors() {
	ip netns exec "$1" awk '$1 == "Udp:" { if (!n++) { for (i = 2; i <= NF; i++) if ($i == "RcvbufErrors") c = i } else print $c }' /proc/net/snmp
}

# run_client TIMEOUT OUTFILE perfdhcp-args...: perfdhcp in the client
# namespace; sets CLIENT_CPU to the CPU seconds it used and DROPPED to
# "SRV CLI", the datagrams dropped meanwhile at full receive buffers in the
# server's namespace and in perfdhcp's.
CLIENT_CPU=0
DROPPED="0 0"
run_client() {
	local t=$1 out=$2 c0 s0 k0
	shift 2
	s0=$(rcvbuf_errors "$NS_S")
	k0=$(rcvbuf_errors "$NS_C")
	times >"$WORK/times"
	c0=$(children_cpu "$WORK/times")
	timeout "$t" ip netns exec "$NS_C" "${CLI_PIN[@]}" perfdhcp "$@" </dev/null >"$out" 2>&1 &
	CLIENT_PID=$!
	wait "$CLIENT_PID" || true
	CLIENT_PID=
	times >"$WORK/times"
	CLIENT_CPU=$(awk -v a="$c0" -v b="$(children_cpu "$WORK/times")" 'BEGIN { printf "%.2f", b - a }')
	DROPPED="$(($(rcvbuf_errors "$NS_S") - s0)) $(($(rcvbuf_errors "$NS_C") - k0))"
}

# probe is bench/lib.sh's (with this run_client).

wait_ready() { # NAME: 0 answers, 1 silent for READY_TIMEOUT s, 2 exited
	local name=$1 deadline=$((SECONDS + READY_TIMEOUT)) i
	for ((i = 0; i < READY_TIMEOUT * 5 && SECONDS < deadline; i++)); do
		kill -0 "${PID[$name]}" 2>/dev/null || return 2
		probe && return 0
		sleep 0.2
	done
	kill -0 "${PID[$name]}" 2>/dev/null || return 2
	return 1
}

# perf_start NAME RUN / perf_stop: with PERF=1, sample pxed's stacks while
# perfdhcp runs; the top of the report goes to OUT/perf/RUN.txt.
PERF_RUN=
perf_start() {
	[[ $PERF == 1 && $1 == pxed* ]] || return 0
	PERF_RUN=$2
	timeout 600 perf record -F 499 -g -p "${PID[$1]}" -o "$WORK/$2.perf.data" >/dev/null 2>&1 &
	PERF_PID=$!
}
perf_stop() {
	[[ -n $PERF_PID ]] || return 0
	kill -INT "$PERF_PID" 2>/dev/null || true
	wait "$PERF_PID" 2>/dev/null || true
	PERF_PID=
	perf report -i "$WORK/$PERF_RUN.perf.data" --no-children --percent-limit 0.7 --stdio -g none 2>/dev/null |
		grep -v '^$' | head -n 60 >"$OUT/perf/$PERF_RUN.txt" || true
	perf report -i "$WORK/$PERF_RUN.perf.data" --children --percent-limit 2 --stdio -g none 2>/dev/null |
		grep -v '^$' | head -n 80 >"$OUT/perf/$PERF_RUN.children.txt" || true
	rm -f "$WORK/$PERF_RUN.perf.data"
}

# sample NAME: prints "cpu_ticks commits commit_seconds records discovers
# offers requests acks": the server's CPU time so far (utime + stime, in
# clock ticks) and, for pxed, its lease commit counters
# (pxed_lease_commit_seconds{result="ok"}, the records committed) and the
# DISCOVERs and REQUESTs it received and answered with an OFFER or an ACK
# (pxed_dhcp_messages_total); "-" for each of those with Kea.
sample() {
	local name=$1 pid=${PID[$1]} ticks m
	ticks=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$pid/stat" 2>/dev/null || echo 0)
	if [[ $name == pxed* ]] &&
		m=$(ip netns exec "$NS_S" curl -sf --max-time 5 "http://127.0.0.1:$METRICS_PORT/metrics" 2>/dev/null); then
		awk -v t="$ticks" '
			/^pxed_lease_commit_seconds_count\{result="ok"\}/ { c = $2 }
			/^pxed_lease_commit_seconds_sum\{result="ok"\}/   { s = $2 }
			/^pxed_lease_records_committed_total /           { r = $2 }
			/^pxed_dhcp_messages_total\{/ && /type="DISCOVER"/ { d += $2; if (/outcome="offer"/) o += $2 }
			/^pxed_dhcp_messages_total\{/ && /type="REQUEST"/  { q += $2; if (/outcome="ack"/) a += $2 }
			END { printf "%s %d %.6f %d %d %d %d %d\n", t, c, s, r, d, o, q, a }' <<<"$m"
	else
		echo "$ticks - - - - - - -"
	fi
}

# delta BEFORE AFTER: the differences of two samples, "-" where unknown.
delta() {
	awk -v a="$1" -v b="$2" 'BEGIN { n = split(a, x, " "); split(b, y, " ")
		for (i = 1; i <= n; i++) printf "%s%s", (i > 1 ? " " : ""), (x[i] == "-" || y[i] == "-" ? "-" : y[i] - x[i]); print "" }'
}

# record MODE LEVEL RATE NAME VERDICT RAW EXPECTED: judge a perfdhcp run and
# append it to RESULTS; 0 when the rate was held.
record() {
	local mode=$1 level=$2 rate=$3 name=$4 verdict=$5 raw=$6 expected=$7 used=${8:-"0 - - - - - - -"} stats
	local do_s=0 do_r=0 do_d=0 ra_s=0 ra_r=0 ra_d=0
	if [[ -s $OUT/$raw ]] && stats=$(parse_perfdhcp "$OUT/$raw"); then
		read -r do_s do_r do_d ra_s ra_r ra_d <<<"$stats"
		verdict=${verdict:-ok}
	else
		verdict=${verdict:-error}
	fi
	awk -v OFS='\t' -v mode="$mode" -v level="$level" -v rate="$rate" -v name="$name" -v verdict="$verdict" \
		-v do_s="$do_s" -v do_r="$do_r" -v do_d="$do_d" -v ra_s="$ra_s" -v ra_r="$ra_r" -v ra_d="$ra_d" \
		-v expn="$expected" -v used="$used" -v tck="$CLK_TCK" -v ccpu="$CLIENT_CPU" -v dropped="$DROPPED" -v maxdrop="$MAX_DROP_PCT" -v minsent="$MIN_SENT_PCT" -v raw="$raw" '
		function loss(s, r, d) { if (s - r > d) d = s - r; return s > 0 ? 100 * d / s : (r > 0 ? 0 : 100) }
		BEGIN {
			dl = loss(do_s, do_r, do_d); rl = (do_r > 0 ? loss(ra_s, ra_r, ra_d) : 100)
			if (verdict == "ok") {
				if (dl > maxdrop || rl > maxdrop) verdict = "drops"
				else if (do_s < minsent / 100 * expn) verdict = "client"
				else verdict = "held"
			}
			split(used, u, " ")
			cpu = (ra_r > 0 ? sprintf("%.1f", 1e6 * u[1] / tck / ra_r) : "-")
			ms = (u[2] != "-" && u[2] > 0 ? sprintf("%.2f", 1000 * u[3] / u[2]) : "-")
			per = (u[2] != "-" && u[2] > 0 ? sprintf("%.1f", u[4] / u[2]) : "-")
			seen = (u[5] == "-" ? "-" : u[5] "/" u[6] " " u[7] "/" u[8])
			print mode, level, rate, name, verdict, do_s, do_r, sprintf("%.3f", dl), ra_s, ra_r, sprintf("%.3f", rl), expn, raw,
				cpu, (u[2] == "-" ? "-" : u[2]), ms, per, ccpu, dropped, seen
		}' >>"$RESULTS"
	tail -n 1 "$RESULTS" | awk -F'\t' '{ printf "  %-5s %3s %-6s @ %6d/s: %-9s DISCOVER %s/%s (loss %s%%), REQUEST %s/%s (loss %s%%); CPU %s us/exchange, %s commits of %s ms and %s records; perfdhcp CPU %s s; full receive buffers dropped (server client) %s; pxed received/answered DISCOVER REQUEST %s\n",
		$1, $2, $4, $3, $5, $7, $6, $8, $10, $9, $11, $14, $15, $16, $17, $18, $19, $20 }' >&2
	[[ $(tail -n 1 "$RESULTS" | cut -f5) == held ]]
}

# --- fill mode ---------------------------------------------------------------

# measure_fill FILL RATE NAME: NAME on a copy of the FILL % pre-fill, new
# clients at RATE.
measure_fill() {
	local fill=$1 rate=$2 name=$3 run dir logf raw rc=0 verdict= n free cmd before used="0 - - - - - - -"
	run=fill$fill-$rate-$name
	dir=$WORK/$run
	logf=$OUT/logs/$run.log
	raw=raw/$run.txt
	free=$((POOL_SIZE - FILL_N[$fill]))
	n=$((rate * SECS))
	((n <= free * NEW_PCT / 100)) || n=$((free * NEW_PCT / 100))
	mkdir -p "$dir/state"
	case $name in
	pxed) cp "$WORK/seed-$fill/leases.db" "$dir/state/leases.db" ;;
	kea) cp "$WORK/seed-$fill/kea-leases4.csv" "$dir/kea-leases4.csv" ;;
	pxed2)
		if [[ -z $PXED2_PREFILL ]]; then # a bolt store, as the pxed column's
			cp "$WORK/seed-$fill/leases.db" "$dir/state/leases.db"
		else
			cmd=${PXED2_PREFILL//\{seed\}/$WORK/seed-$fill/leases.db}
			cmd=${cmd//\{run\}/$run}
			cmd=${cmd//\{pxed\}/${PXED2:-$PXED}}
			bash -c "$cmd" >"$OUT/logs/$run.prefill.log" 2>&1 || die "PXED2_PREFILL failed (log: $OUT/logs/$run.prefill.log)"
		fi
		;;
	esac
	start_server "$name" "$dir" "$logf" "$run"
	wait_ready "$name" || rc=$?
	if ((rc == 0)); then
		((fill == FILL_LIST[-1])) && perf_start "$name" "$run"
		before=$(sample "$name")
		run_client $((SECS * 3 + WAIT_US / 1000000 + 30)) "$OUT/$raw" \
			-4 -l "$CLI_IF" -r "$rate" -R 1000000 -s "$SEED" -n "$n" -p "$((SECS * 2))" "${WAIT_ARGS[@]}"
		used=$(delta "$before" "$(sample "$name")")
		perf_stop
		kill -0 "${PID[$name]}" 2>/dev/null || verdict=died
	else
		verdict=$( ((rc == 2)) && echo died || echo no-answer)
	fi
	stop_server "$name"
	rm -rf "$dir"
	record fill "$fill" "$rate" "$name" "$verdict" "$raw" "$n" "$used"
}

declare -A FILL_N=()
run_fill() {
	local fill s rate active still
	for fill in "${FILL_LIST[@]}"; do
		FILL_N[$fill]=$((POOL_SIZE * fill / 100))
		mkdir -p "$WORK/seed-$fill"
		"$WORK/bin/seed" -first "$POOL_FIRST" -last "$POOL_LAST" -n "${FILL_N[$fill]}" -layout "$FILL_LAYOUT" \
			-bolt "$WORK/seed-$fill/leases.db" -kea "$WORK/seed-$fill/kea-leases4.csv" || die "seeding $fill % failed"
		log "fill $fill %: ${FILL_N[$fill]} of $POOL_SIZE addresses bound ($FILL_LAYOUT layout)"
		active=("${SERVER_LIST[@]}")
		for rate in "${RATE_LIST[@]}"; do
			((${#active[@]} > 0)) || break
			still=()
			for s in "${active[@]}"; do
				measure_fill "$fill" "$rate" "$s" && still+=("$s")
			done
			active=("${still[@]}")
		done
		rm -rf "$WORK/seed-$fill"
	done
}

# --- reuse mode --------------------------------------------------------------

# run_reuse NAME: one server, every rate in turn, no restart.
run_reuse() {
	local name=$1 dir=$WORK/reuse-$1 logf=$OUT/logs/reuse-$1.log rc=0 rate raw verdict run before used
	start_server "$name" "$dir" "$logf" "reuse-$name-$$"
	wait_ready "$name" || rc=$?
	if ((rc != 0)); then
		record reuse - "${REUSE_LIST[0]}" "$name" "$( ((rc == 2)) && echo died || echo no-answer)" raw/none 0 || true
		stop_server "$name"
		return
	fi
	for rate in "${REUSE_LIST[@]}"; do
		run=reuse-$rate-$name
		raw=raw/$run.txt
		verdict=
		perf_start "$name" "$run"
		before=$(sample "$name")
		run_client $((SECS + WAIT_US / 1000000 + 30)) "$OUT/$raw" \
			-4 -l "$CLI_IF" -r "$rate" -R "$REUSE_CLIENTS" -s "$SEED" -p "$SECS" "${WAIT_ARGS[@]}"
		used=$(delta "$before" "$(sample "$name")")
		perf_stop
		kill -0 "${PID[$name]}" 2>/dev/null || verdict=died
		record reuse "$REUSE_CLIENTS" "$rate" "$name" "$verdict" "$raw" $((rate * SECS)) "$used" || true
		[[ -z $verdict ]] || break
	done
	stop_server "$name"
	log "reuse $name: lease storage $(du -sb "$dir" | awk '{ print $1 }') bytes"
	rm -rf "$dir"
}

# --- run ---------------------------------------------------------------------

log "servers: ${SERVER_LIST[*]}; modes: ${MODE_LIST[*]}; pool $POOL_FIRST-$POOL_LAST ($POOL_SIZE addresses); results in $OUT"
for m in "${MODE_LIST[@]}"; do
	case $m in
	fill) run_fill ;;
	reuse) for s in "${SERVER_LIST[@]}"; do run_reuse "$s"; done ;;
	esac
done

# --- report ------------------------------------------------------------------

best() { # MODE LEVEL SERVER: highest rate held before the first not held
	awk -F'\t' -v m="$1" -v l="$2" -v s="$3" '$1 == m && $2 == l && $4 == s {
		if ($5 != "held") exit; b = $3 } END { print b + 0 }' "$RESULTS"
}
ratio() { if [[ -n $1 && -n $2 && $2 != 0 && $1 != 0 ]]; then awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; else echo -; fi; }
{
	cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
	echo "## Allocation as the pool fills (bench/poolfill/run.sh) — $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "- Machine: \`nproc\` $(nproc), ${cpu:-unknown CPU}, kernel $(uname -r); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
	echo "- pxed $PXED_DESC${PXED_EXTRA_ARGS:+ (serve $PXED_EXTRA_ARGS)}$([[ " ${SERVER_LIST[*]} " == *" pxed2 "* ]] && echo "; ${LABEL[pxed2]}: ${PXED2_BIN:-the same binary}${PXED2_ARGS:+, serve $PXED2_ARGS}"); Kea $(kea-dhcp4 -v 2>/dev/null | head -n 1) (memfile, persist, $( ((KEA_THREADS > 0)) && echo "$KEA_THREADS threads" || echo single-threaded)); perfdhcp $(perfdhcp -v 2>&1 | head -n 1 | sed 's/^VERSION: //')."
	echo "- Pool $POOL_FIRST–$POOL_LAST ($POOL_SIZE addresses); leases on $(df --output=fstype "$WORK" 2>/dev/null | tail -n 1) under $LEASE_DIR; CPUs $([[ $PIN == 1 ]] && echo "pinned (servers CPU 0, perfdhcp CPU 1)" || echo "not pinned")."
	echo "- Command: \`$INVOCATION\` (as root)."
	echo
	if [[ " ${MODE_LIST[*]} " == *" fill "* ]]; then
		echo "New clients on a pre-filled pool ($FILL_LAYOUT layout; the same pre-fill for every server): highest rate held (DORA/s), ≤ $MAX_DROP_PCT % unanswered; each run at most min(rate × $SECS, $NEW_PCT % of the free addresses) exchanges."
		echo
		printf '| Utilisation |'
		for s in "${SERVER_LIST[@]}"; do printf ' %s |' "${LABEL[$s]}"; done
		printf ' pxed ÷ Kea |\n|---:|'
		for s in "${SERVER_LIST[@]}"; do printf -- '---:|'; done
		printf -- '---:|\n'
		for fill in "${FILL_LIST[@]}"; do
			printf '| %s %% |' "$fill"
			for s in "${SERVER_LIST[@]}"; do printf ' %s |' "$(best fill "$fill" "$s")"; done
			printf ' %s |\n' "$(ratio "$(best fill "$fill" pxed)" "$(best fill "$fill" kea)")"
		done
		echo
	fi
	if [[ " ${MODE_LIST[*]} " == *" reuse "* ]]; then
		echo "One server for every rate, no restart, $REUSE_CLIENTS clients (perfdhcp -R) on the $POOL_SIZE-address pool, $SECS s a rate: highest rate held before the first that was not."
		echo
		printf '| |'
		for s in "${SERVER_LIST[@]}"; do printf ' %s |' "${LABEL[$s]}"; done
		printf ' pxed ÷ Kea |\n|---|'
		for s in "${SERVER_LIST[@]}"; do printf -- '---:|'; done
		printf -- '---:|\n| best rate held |'
		for s in "${SERVER_LIST[@]}"; do printf ' %s |' "$(best reuse "$REUSE_CLIENTS" "$s")"; done
		printf ' %s |\n' "$(ratio "$(best reuse "$REUSE_CLIENTS" pxed)" "$(best reuse "$REUSE_CLIENTS" kea)")"
		echo
	fi
	echo "Every run (mode, level: % filled or reuse clients, offered rate, server, verdict, DISCOVERs answered/sent, loss, REQUESTs answered/sent, loss, exchanges asked; the server's CPU time per completed exchange; for pxed, lease commits (fsynced transactions), their mean time and records per commit; perfdhcp's CPU seconds; datagrams the kernel dropped at a full receive buffer, server's namespace / perfdhcp's; DISCOVERs pxed received/answered, REQUESTs received/ACKed):"
	echo
	echo '```'
	awk -F'\t' '{ printf "%-5s %6s %6d/s %-6s %-9s DO %7d/%-7d %7.3f%%  RA %7d/%-7d %7.3f%%  n=%-6d cpu %5s us  commits %6s  %6s ms  %6s rec  perfdhcp %5s s  rcvbuf drops %s  pxed saw %s\n",
		$1, $2, $3, $4, $5, $7, $6, $8, $10, $9, $11, $12, $14, $15, $16, $17, $18, $19, $20 }' "$RESULTS"
	echo '```'
} | tee "$OUT/report.md"
log "report: $OUT/report.md"
