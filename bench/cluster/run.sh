#!/usr/bin/env bash
# Cluster throughput: perfdhcp's clean DORA/s, side by side in one run, for
# one pxed on bbolt, one pxed on a 3-member etcd, two pxed on that etcd
# answering the same pool on one segment, and Kea (kea-dhcp4, memfile, as
# bench/dhcp runs it); then the failover gap of two pxed when one is killed.
# Run as root:
#
#   bench/cluster/run.sh                       # prints a Markdown report
#   CONFIGS="bolt kea" RATES="1000 2000" SECS=3 bench/cluster/run.sh   # smoke test
#
# Network (every piece inside namespaces this script creates and deletes):
#
#   pxcl-br-PID   two bridges: seg (the DHCP segment, 198.18.0.0/16) and ctl
#                 (the etcd network, 198.51.100.0/24)
#   pxcl-cli-PID  perfdhcp and tcpdump: seg0 198.18.0.2/16
#   pxcl-s1-PID   pxed A, or Kea: seg0 198.18.0.1/16, ctl0 198.51.100.21/24
#   pxcl-s2-PID   pxed B: seg0 198.18.0.3/16, ctl0 198.51.100.22/24
#   pxcl-e1..3-PID  etcd members: ctl0 198.51.100.11..13/24, client port 2379
#
# Throughput (CONFIGS, the order rotating every round): for every rate in
# RATES (ascending; a configuration leaves at the first rate it does not
# hold), the servers start afresh with empty lease storage (bolt: a new
# state directory; etcd: a new --store-prefix, /bench/RUN/, the etcd
# cluster stays up), and
#
#   perfdhcp -4 -l seg0 -r RATE -R CLIENTS -p SECS -W WAIT_US
#
# runs in pxcl-cli. A rate is held with <= MAX_DROP_PCT % of the DISCOVERs
# and of the REQUESTs unanswered and >= MIN_SENT_PCT % of RATE x SECS sent.
# With two pxed both see every broadcast; perfdhcp takes the first OFFER
# and its REQUEST names that server.
#
# Failover (FAILOVER=1, needs the etcd configurations): two pxed on etcd,
# perfdhcp at FAIL_RATE for FAIL_SECS with a fresh client population,
# tcpdump in pxcl-cli timestamping every ACK; pxed A is killed with SIGKILL
# FAIL_KILL_AT seconds in. Reported: the longest gap between two ACKs (and
# the one spanning the kill), ACKs per second before and after.
#
# Configurations: bolt (one pxed, --store default), etcd1 (one pxed,
# --store etcd://…), etcd2 (pxed A and B on the same etcd prefix), kea.
#
# Environment (defaults in brackets):
#   CONFIGS ["bolt etcd1 etcd2 kea"]
#   RATES ["500 1000 2000 3000 4000 5000 6000 7000 8000 9000 10000 12000"]
#   SECS [10], CLIENTS [30000], WAIT_US [1000000], ROUNDS [1]
#   MAX_DROP_PCT [1], MIN_SENT_PCT [97]
#   POOL ["198.18.1.0 198.18.255.254"]  the dynamic range (in 198.18.0.0/16)
#   FAILOVER [1], FAIL_RATE [1000], FAIL_SECS [30], FAIL_KILL_AT [10]
#   PXED_BIN / PXED_REV   as in bench/dhcp (bench/lib.sh build_pxed)
#   PXED_ARGS             extra `pxed serve` flags for every pxed
#   ETCD_BIN              an etcd server binary; default: built from go.mod's
#                         tool (go build go.etcd.io/etcd/server/v3)
#   PIN [0]               1: servers (pxed, Kea, etcd) on CPU 0, perfdhcp on CPU 1
#   CLI_NICE [-10]        perfdhcp's nice value: the load generator is the
#                         instrument; with six busy processes on two CPUs a
#                         perfdhcp waiting for a CPU overflows its receive
#                         buffer (counted in the report) and the run measures
#                         the scheduler. Applied to every configuration.
#   SETTLE [2]            seconds between two pxed answering and the load
#                         (they re-read each other's announcement every
#                         second; before that both answer every DISCOVER)
#   GOMAXPROCS            reaches every Go process (pxed and the etcd
#                         members), as does GOGC; reported. Unset: the Go
#                         default, one P per CPU
#   PXED_LOG_LEVEL [warn], READY_TIMEOUT [30], KEA_THREADS [0]
#   OUT [/tmp/pxed-bench-cluster.PID]  raw output, logs, results.tsv, report.md
#   LEASE_DIR [/var/tmp]  lease storage and etcd data (a real disk)
set -euo pipefail
export LC_ALL=C

INVOCATION=
for v in CONFIGS RATES SECS CLIENTS WAIT_US ROUNDS MAX_DROP_PCT MIN_SENT_PCT POOL FAILOVER FAIL_RATE FAIL_SECS \
	FAIL_KILL_AT PXED_BIN PXED_REV PXED_ARGS ETCD_BIN PIN CLI_NICE SETTLE PXED_LOG_LEVEL READY_TIMEOUT KEA_THREADS OUT LEASE_DIR \
	GOMAXPROCS GOGC; do
	[[ -n ${!v:-} ]] && INVOCATION+="$v=$(printf %q "${!v}") "
done
INVOCATION+="bench/cluster/run.sh"

CONFIGS=${CONFIGS:-"bolt etcd1 etcd2 kea"}
RATES=${RATES:-"500 1000 2000 3000 4000 5000 6000 7000 8000 9000 10000 12000"}
SECS=${SECS:-10}
CLIENTS=${CLIENTS:-30000}
WAIT_US=${WAIT_US:-1000000}
ROUNDS=${ROUNDS:-1}
MAX_DROP_PCT=${MAX_DROP_PCT:-1}
MIN_SENT_PCT=${MIN_SENT_PCT:-97}
POOL=${POOL:-"198.18.1.0 198.18.255.254"}
FAILOVER=${FAILOVER:-1}
FAIL_RATE=${FAIL_RATE:-1000}
FAIL_SECS=${FAIL_SECS:-30}
FAIL_KILL_AT=${FAIL_KILL_AT:-10}
PXED_ARGS=${PXED_ARGS:-}
ETCD_BIN=${ETCD_BIN:-}
PIN=${PIN:-0}
CLI_NICE=${CLI_NICE:--10}
PXED_LOG_LEVEL=${PXED_LOG_LEVEL:-warn}
READY_TIMEOUT=${READY_TIMEOUT:-30}
SETTLE=${SETTLE:-2}
KEA_THREADS=${KEA_THREADS:-0}
OUT=${OUT:-/tmp/pxed-bench-cluster.$$}
LEASE_DIR=${LEASE_DIR:-/var/tmp}
SRV_PIN=(env) CLI_PIN=(env)
if [[ $PIN == 1 ]]; then
	SRV_PIN=(taskset -c 0) CLI_PIN=(taskset -c 1)
fi
[[ $CLI_NICE =~ ^-?[0-9]+$ ]] || { echo "CLI_NICE must be an integer" >&2; exit 1; }
CLI_PIN=(nice -n "$CLI_NICE" "${CLI_PIN[@]}")

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

NS_BR=pxcl-br-$$
NS_C=pxcl-cli-$$
NS_S1=pxcl-s1-$$
NS_S2=pxcl-s2-$$
NS_E=(pxcl-e1-$$ pxcl-e2-$$ pxcl-e3-$$)
ETCD_IPS=(198.51.100.11 198.51.100.12 198.51.100.13)
SRV_IF=seg0 # every namespace's port on the DHCP segment
CLI_IF=seg0
SRV_IP=198.18.0.1 # pxed A or Kea; pxed B is 198.18.0.3
CLI_IP=198.18.0.2
PREFIX=16
SUBNET=198.18.0.0
NETMASK=255.255.0.0
PROBE_MAC=02:00:00:00:00:01
METRICS_PORT=9464 # pxed's /metrics on its namespace's loopback
STORE_URL=etcd://${ETCD_IPS[0]}:2379,${ETCD_IPS[1]}:2379,${ETCD_IPS[2]}:2379

declare -A PID=()
declare -A LABEL=([bolt]="pxed, bolt" [etcd1]="pxed, etcd" [etcd2]="2 × pxed, etcd" [kea]="Kea")
CLIENT_PID=
NETNS_MADE=()
WORK=

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

# --- preflight ---------------------------------------------------------------

[[ $EUID -eq 0 ]] || die "run as root: the script creates network namespaces"
for cmd in ip perfdhcp timeout setsid awk sort curl; do
	command -v "$cmd" >/dev/null || die "$cmd not found"
done
read -r -a CONFIG_LIST <<<"$CONFIGS"
read -r -a RATE_LIST <<<"$RATES"
((${#CONFIG_LIST[@]} > 0)) || die "CONFIGS is empty"
NEED_ETCD=0
for c in "${CONFIG_LIST[@]}"; do
	case $c in
	bolt) ;;
	etcd1 | etcd2) NEED_ETCD=1 ;;
	kea) command -v kea-dhcp4 >/dev/null || die "kea-dhcp4 not found (apt-get install kea-dhcp4-server)" ;;
	*) die "unknown configuration '$c' in CONFIGS (bolt, etcd1, etcd2, kea)" ;;
	esac
done
[[ $FAILOVER == 1 && " ${CONFIG_LIST[*]} " != *" etcd2 "* ]] && FAILOVER=0
if [[ $FAILOVER == 1 ]]; then
	command -v tcpdump >/dev/null || die "tcpdump not found (FAILOVER=0 leaves the failover gap out)"
	NEED_ETCD=1
fi
isint() { [[ $1 =~ ^[1-9][0-9]*$ ]]; }
for v in ROUNDS SECS CLIENTS READY_TIMEOUT FAIL_RATE FAIL_SECS FAIL_KILL_AT; do isint "${!v}" || die "$v must be a positive integer"; done
((FAIL_KILL_AT < FAIL_SECS)) || die "FAIL_KILL_AT must be less than FAIL_SECS"
[[ $WAIT_US =~ ^[0-9]+$ ]] || die "WAIT_US must be a non-negative integer"
prev=0
for r in "${RATE_LIST[@]}"; do
	isint "$r" && ((r > prev)) || die "RATES must be ascending positive integers"
	prev=$r
done
ip2int() {
	local IFS=. a b c d
	read -r a b c d <<<"$1"
	echo $(((a << 24) | (b << 16) | (c << 8) | d))
}
read -r POOL_FIRST POOL_LAST POOL_EXTRA <<<"$POOL"
ipre='^198\.18\.([0-9]{1,3})\.([0-9]{1,3})$'
[[ -z ${POOL_EXTRA:-} && $POOL_FIRST =~ $ipre && $POOL_LAST =~ $ipre ]] || die "POOL must be two addresses in 198.18.0.0/16"
POOL_SIZE=$(($(ip2int "$POOL_LAST") - $(ip2int "$POOL_FIRST") + 1))
(($(ip2int "$POOL_FIRST") >= $(ip2int 198.18.0.16) && POOL_SIZE >= 2 * CLIENTS)) ||
	die "POOL must start at or above 198.18.0.16 and hold 2 x CLIENTS addresses"
WAIT_ARGS=()
((WAIT_US == 0)) || WAIT_ARGS=(-W "$WAIT_US")

mkdir -p "$OUT"/raw "$OUT"/logs
[[ -d $LEASE_DIR && -w $LEASE_DIR ]] || die "LEASE_DIR=$LEASE_DIR is not a writable directory"
WORK=$(mktemp -d "$LEASE_DIR/pxed-bench-cluster.XXXXXX")
RESULTS=$OUT/results.tsv # round rate config verdict do_s do_r do_loss% ra_s ra_r ra_loss% ack/s raw srv_us/ack etcd_us/ack cli_rcvbuf_drops "offers acks" srv_rcvbuf_drops
: >"$RESULTS"

cleanup() {
	local rc=$? s ns
	trap - EXIT INT TERM
	if [[ -n $CLIENT_PID ]]; then
		kill -TERM "$CLIENT_PID" 2>/dev/null || true
		wait "$CLIENT_PID" 2>/dev/null || true
	fi
	for s in "${!PID[@]}"; do stop_server "$s"; done
	for ns in "${NETNS_MADE[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
	[[ -n $WORK && -d $WORK ]] && rm -rf "$WORK"
	((rc == 0)) || { tail_logs; log "raw results so far: $OUT"; }
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
LOGS=$OUT/logs

# --- build -------------------------------------------------------------------

build_pxed
mkdir -p "$WORK/tftp-root"
if ((NEED_ETCD)); then
	if [[ -n $ETCD_BIN ]]; then
		[[ -x $ETCD_BIN ]] || die "ETCD_BIN=$ETCD_BIN is not executable"
		cp "$ETCD_BIN" "$WORK/bin/etcd"
	else
		(cd "$REPO" && go build -o "$WORK/bin/etcd" go.etcd.io/etcd/server/v3) || die "building etcd from go.mod's tool failed"
	fi
	ETCD_VERSION=$("$WORK/bin/etcd" --version 2>/dev/null | awk -F': ' '/etcd Version/ { print $2 }')
fi

# --- network -----------------------------------------------------------------

# port NS IF BRIDGE ADDR/LEN: a veth from NS (named IF there) to BRIDGE in
# NS_BR, both ends created inside the namespaces.
port() {
	local ns=$1 ifname=$2 br=$3 a=$4 peer
	peer=${br}-${ns##pxcl-}
	peer=${peer%-"$$"}
	ip -n "$NS_BR" link add "$peer" type veth peer name "$ifname" netns "$ns"
	ip -n "$NS_BR" link set "$peer" master "$br" up
	ip -n "$ns" addr add "$a" dev "$ifname"
	ip -n "$ns" link set "$ifname" up
}
for ns in "$NS_BR" "$NS_C" "$NS_S1" "$NS_S2" "${NS_E[@]}"; do
	ip netns add "$ns"
	NETNS_MADE+=("$ns")
	ip -n "$ns" link set lo up
done
for br in seg ctl; do
	ip -n "$NS_BR" link add "$br" type bridge
	ip -n "$NS_BR" link set "$br" up
done
port "$NS_C" seg0 seg "$CLI_IP/$PREFIX"
port "$NS_S1" seg0 seg "$SRV_IP/$PREFIX"
port "$NS_S2" seg0 seg "198.18.0.3/$PREFIX"
port "$NS_S1" ctl0 ctl 198.51.100.21/24
port "$NS_S2" ctl0 ctl 198.51.100.22/24
for i in 0 1 2; do port "${NS_E[$i]}" ctl0 ctl "${ETCD_IPS[$i]}/24"; done
log "namespaces: bridge $NS_BR, perfdhcp $NS_C, servers $NS_S1 $NS_S2, etcd ${NS_E[*]}"

DHCPD_CONF=$OUT/dhcpd.conf
dhcpd_conf bench/cluster/run.sh >"$DHCPD_CONF"
kea_config "LEASE_DIR/RUN/kea-leases4.csv" "OUT/logs/RUN.kea.log" >"$OUT/kea-dhcp4.json"

# --- etcd --------------------------------------------------------------------

start_etcd() {
	local i initial=
	for i in 0 1 2; do initial+="${initial:+,}e$((i + 1))=http://${ETCD_IPS[$i]}:2380"; done
	for i in 0 1 2; do
		mkdir -p "$WORK/etcd-e$((i + 1))"
		setsid ip netns exec "${NS_E[$i]}" "${SRV_PIN[@]}" "$WORK/bin/etcd" --name "e$((i + 1))" \
			--data-dir "$WORK/etcd-e$((i + 1))" \
			--listen-client-urls "http://${ETCD_IPS[$i]}:2379" --advertise-client-urls "http://${ETCD_IPS[$i]}:2379" \
			--listen-peer-urls "http://${ETCD_IPS[$i]}:2380" --initial-advertise-peer-urls "http://${ETCD_IPS[$i]}:2380" \
			--initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token "pxed-bench-$$" \
			--log-level warn </dev/null >"$OUT/logs/etcd-e$((i + 1)).log" 2>&1 &
		PID[etcd$i]=$!
	done
	local deadline=$((SECONDS + 60))
	# Ready when every member reports itself healthy (its /health is
	# true only with a leader and a working quorum).
	for i in 0 1 2; do
		until ip netns exec "$NS_S1" curl -sf --max-time 2 "http://${ETCD_IPS[$i]}:2379/health" | grep -q '"health":"true"'; do
			kill -0 "${PID[etcd$i]}" 2>/dev/null || die "etcd member e$((i + 1)) exited (log: $OUT/logs/etcd-e$((i + 1)).log)"
			((SECONDS < deadline)) || die "etcd not healthy within 60 s"
			sleep 0.5
		done
	done
	log "etcd $ETCD_VERSION: 3 members healthy ($STORE_URL)"
}
((NEED_ETCD)) && start_etcd

# --- servers -----------------------------------------------------------------

# start_pxed NAME NS RUNDIR LOG [STORE FLAGS...]: pxed in NS on a fresh state
# directory.
start_pxed() {
	local name=$1 ns=$2 dir=$3 logf=$4
	shift 4
	mkdir -p "$dir/state"
	# shellcheck disable=SC2086 # PXED_ARGS is a list of flags
	setsid ip netns exec "$ns" "${SRV_PIN[@]}" "$PXED" serve --dhcpd-conf "$DHCPD_CONF" --interface "$SRV_IF" \
		--state-dir "$dir/state" --tftp-root "$WORK/tftp-root" --tftp-addr '' --http-addr '' \
		--metrics-addr "127.0.0.1:$METRICS_PORT" --log-level "$PXED_LOG_LEVEL" "$@" $PXED_ARGS </dev/null >"$logf" 2>&1 &
	PID[$name]=$!
	NSOF[$name]=$ns
}
declare -A NSOF=()
NAMES=()

# start_config CONFIG RUN: the servers of CONFIG, with storage under
# $WORK/RUN; sets NAMES to their names (in PID).
start_config() {
	local c=$1 run=$2 dir=$WORK/$2 etcd=(--store "$STORE_URL" --store-prefix "/bench/$2/")
	case $c in
	bolt)
		start_pxed pxedA "$NS_S1" "$dir/a" "$OUT/logs/$run-a.log"
		NAMES=(pxedA)
		;;
	etcd1)
		start_pxed pxedA "$NS_S1" "$dir/a" "$OUT/logs/$run-a.log" "${etcd[@]}"
		NAMES=(pxedA)
		;;
	etcd2)
		start_pxed pxedA "$NS_S1" "$dir/a" "$OUT/logs/$run-a.log" "${etcd[@]}"
		start_pxed pxedB "$NS_S2" "$dir/b" "$OUT/logs/$run-b.log" "${etcd[@]}"
		NAMES=(pxedA pxedB)
		;;
	kea)
		mkdir -p "$dir/kea"
		kea_config "$dir/kea/kea-leases4.csv" "$OUT/logs/$run.kea.log" >"$dir/kea/kea-dhcp4.json"
		KEA_PIDFILE_DIR=$dir/kea KEA_LOCKFILE_DIR=$dir/kea \
			setsid ip netns exec "$NS_S1" "${SRV_PIN[@]}" kea-dhcp4 -c "$dir/kea/kea-dhcp4.json" </dev/null >"$OUT/logs/$run.log" 2>&1 &
		PID[kea]=$!
		NAMES=(kea)
		;;
	esac
}

# run_client and probe are bench/lib.sh's.

# offers NAME: how many OFFERs pxed NAME has sent (its metrics), 0 if unknown.
offers() { answered "$1" | cut -d' ' -f1; }

# wait_ready NAMES...: 0 when the probe gets an OFFER and every pxed among
# NAMES has offered (two pxed share the segment: each must answer); 1 when
# not within READY_TIMEOUT s; 2 when one exited.
wait_ready() {
	local deadline=$((SECONDS + READY_TIMEOUT)) n ok
	while ((SECONDS < deadline)); do
		ok=1
		for n in "$@"; do kill -0 "${PID[$n]}" 2>/dev/null || return 2; done
		probe || ok=0
		for n in "$@"; do
			[[ $n == pxed* ]] || continue
			(($(offers "$n") > 0)) || ok=0
		done
		((ok)) && return 0
		sleep 0.2
	done
	return 1
}

# etcd_leases RUN: how many lease keys (PREFIX/leases/…) the run's prefix
# holds in etcd, through etcd's JSON gateway (v3/kv/range, count only).
etcd_leases() {
	local k e
	k=$(printf '/bench/%s/leases/' "$1" | base64 -w0)
	e=$(printf '/bench/%s/leases0' "$1" | base64 -w0) # '0' follows '/': the end of the prefix
	ip netns exec "$NS_S1" curl -sf --max-time 5 -X POST "http://${ETCD_IPS[0]}:2379/v3/kv/range" \
		-d "{\"key\":\"$k\",\"range_end\":\"$e\",\"count_only\":true}" |
		sed -n 's/.*"count":"\{0,1\}\([0-9]*\).*/\1/p' | grep . || echo 0
}

# ticks NAMES...: the CPU time (user + system, clock ticks) the processes
# NAMES (keys of PID) have used so far.
ticks() {
	local n t=0 v
	for n in "$@"; do
		v=$(awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/${PID[$n]}/stat" 2>/dev/null || echo 0)
		t=$((t + v))
	done
	echo "$t"
}
CLK_TCK=$(getconf CLK_TCK)

# rcvbuf_errors NS...: UDP datagrams the kernels of namespaces NS dropped so
# far because a socket's receive buffer was full (RcvbufErrors,
# /proc/net/snmp), summed.
rcvbuf_errors() {
	local ns t=0 v
	for ns in "$@"; do
		v=$(ip netns exec "$ns" awk '$1 == "Udp:" { if (!n++) { for (i = 2; i <= NF; i++) if ($i == "RcvbufErrors") c = i } else print $c }' /proc/net/snmp)
		t=$((t + ${v:-0}))
	done
	echo "$t"
}

# answered NAMES...: the OFFERs and ACKs the pxed among NAMES have sent
# (their metrics), "OFFERS ACKS"; 0 for a pxed whose metrics do not answer.
answered() {
	local n o=0 a=0 x y
	for n in "$@"; do
		[[ $n == pxed* ]] || continue
		read -r x y < <(ip netns exec "${NSOF[$n]}" curl -sf --max-time 2 "http://127.0.0.1:$METRICS_PORT/metrics" 2>/dev/null |
			awk '/^pxed_dhcp_messages_total\{/ { if (/outcome="offer"/) o += $2; if (/outcome="ack"/) a += $2 } END { print o + 0, a + 0 }')
		o=$((o + ${x:-0})) a=$((a + ${y:-0}))
	done
	echo "$o $a"
}

# --- throughput --------------------------------------------------------------

measure() { # ROUND RATE CONFIG: appends to RESULTS; 0 when held
	local round=$1 rate=$2 c=$3 run raw names rc=0 verdict= stats n
	local do_s=0 do_r=0 do_d=0 ra_s=0 ra_r=0 ra_d=0
	local s0 e0 k0 d0 a0 srv_t=0 etcd_t=0 cli_drops=0 srv_drops=0 ans="0 0" etcds=()
	[[ $c == etcd* ]] && etcds=(etcd0 etcd1 etcd2)
	run=r$round-$rate-$c
	raw=raw/$run.txt
	start_config "$c" "$run"
	names=("${NAMES[@]}")
	wait_ready "${names[@]}" || rc=$?
	if ((rc == 0)); then
		# Two pxed on one segment split its clients once each has read the
		# other's announcement (re-read every second): until then both
		# answer every DISCOVER. The run measures the steady state.
		((${#names[@]} == 1)) || sleep "$SETTLE"
		s0=$(ticks "${names[@]}") e0=$(ticks "${etcds[@]}") k0=$(rcvbuf_errors "$NS_C")
		d0=$(rcvbuf_errors "$NS_S1" "$NS_S2")
		read -r -a a0 < <(answered "${names[@]}")
		run_client $((SECS + WAIT_US / 1000000 + 30)) "$OUT/$raw" \
			-4 -l "$CLI_IF" -r "$rate" -R "$CLIENTS" -p "$SECS" "${WAIT_ARGS[@]}"
		srv_t=$(($(ticks "${names[@]}") - s0)) etcd_t=$(($(ticks "${etcds[@]}") - e0))
		cli_drops=$(($(rcvbuf_errors "$NS_C") - k0))
		srv_drops=$(($(rcvbuf_errors "$NS_S1" "$NS_S2") - d0))
		ans=$(answered "${names[@]}" | awk -v o="${a0[0]}" -v a="${a0[1]}" '{ print $1 - o, $2 - a }')
		for n in "${names[@]}"; do kill -0 "${PID[$n]}" 2>/dev/null || verdict=died; done
		if stats=$(parse_perfdhcp "$OUT/$raw"); then
			read -r do_s do_r do_d ra_s ra_r ra_d <<<"$stats"
			verdict=${verdict:-ok}
		else
			verdict=${verdict:-error}
		fi
		# An etcd configuration must have put its leases in etcd: a pxed
		# that took --store etcd:// but kept them in bbolt measures bolt.
		if [[ $c == etcd* ]] && ((ra_r > 0)); then
			n=$(etcd_leases "$run")
			((n > 0)) || die "$c: $ra_r ACKs but no lease under /bench/$run/leases/ in etcd: this pxed does not keep leases in etcd"
		fi
	else
		verdict=$( ((rc == 2)) && echo died || echo no-answer)
	fi
	for n in "${names[@]}"; do stop_server "$n"; done
	rm -rf "${WORK:?}/$run"
	awk -v OFS='\t' -v round="$round" -v rate="$rate" -v c="$c" -v verdict="$verdict" \
		-v do_s="$do_s" -v do_r="$do_r" -v do_d="$do_d" -v ra_s="$ra_s" -v ra_r="$ra_r" -v ra_d="$ra_d" \
		-v secs="$SECS" -v maxdrop="$MAX_DROP_PCT" -v minsent="$MIN_SENT_PCT" -v raw="$raw" \
		-v srv_t="$srv_t" -v etcd_t="$etcd_t" -v tck="$CLK_TCK" -v cli_drops="$cli_drops" -v srv_drops="$srv_drops" -v ans="$ans" '
		function loss(s, r, d) { if (s - r > d) d = s - r; return s > 0 ? 100 * d / s : (r > 0 ? 0 : 100) }
		BEGIN {
			dl = loss(do_s, do_r, do_d); rl = (do_r > 0 ? loss(ra_s, ra_r, ra_d) : 100)
			if (verdict == "ok") {
				if (dl > maxdrop || rl > maxdrop) verdict = "drops"
				else if (do_s < minsent / 100 * rate * secs) verdict = "client"
				else verdict = "held"
			}
			print round, rate, c, verdict, do_s, do_r, sprintf("%.3f", dl), ra_s, ra_r, sprintf("%.3f", rl),
				sprintf("%.0f", ra_r / secs), raw,
				(ra_r > 0 ? sprintf("%.0f", 1e6 * srv_t / tck / ra_r) : "-"),
				(ra_r > 0 && etcd_t > 0 ? sprintf("%.0f", 1e6 * etcd_t / tck / ra_r) : "-"), cli_drops,
				(c == "kea" ? "-" : ans), srv_drops
		}' >>"$RESULTS"
	tail -n 1 "$RESULTS" | awk -F'\t' '{ printf "  %-6s @ %6d/s: %-9s DISCOVER %s/%s (loss %s%%), REQUEST %s/%s (loss %s%%), %s ACK/s; CPU µs/ACK server %s etcd %s; full receive buffers dropped (perfdhcp servers) %s %s; pxed sent OFFER ACK %s\n",
		$3, $2, $4, $6, $5, $7, $9, $8, $10, $11, $13, $14, $15, $17, $16 }' >&2
	[[ $(tail -n 1 "$RESULTS" | cut -f4) == held ]]
}

BEST=$OUT/best.tsv # round config best_rate
: >"$BEST"
for ((r = 1; r <= ROUNDS; r++)); do
	order=()
	for ((i = 0; i < ${#CONFIG_LIST[@]}; i++)); do order+=("${CONFIG_LIST[$(((i + r - 1) % ${#CONFIG_LIST[@]}))]}"); done
	log "round $r/$ROUNDS: ${order[*]}"
	declare -A best=()
	active=("${order[@]}")
	for rate in "${RATE_LIST[@]}"; do
		((${#active[@]} > 0)) || break
		still=()
		for c in "${active[@]}"; do
			if measure "$r" "$rate" "$c"; then
				best[$c]=$rate
				still+=("$c")
			fi
		done
		active=("${still[@]}")
	done
	for c in "${order[@]}"; do printf '%s\t%s\t%s\n' "$r" "$c" "${best[$c]:-0}" >>"$BEST"; done
	unset best
done

# --- failover ----------------------------------------------------------------

# ack_times PCAPTEXT: the time of every DHCPACK in tcpdump -tt -v output.
ack_times() {
	awk '/^[0-9]+\.[0-9]+ IP / { t = $1 } /DHCP-Message.*: ACK/ { print t }' "$1"
}
FAIL_REPORT=
if [[ $FAILOVER == 1 ]]; then
	run=failover
	start_config etcd2 "$run"
	names=("${NAMES[@]}")
	rc=0
	wait_ready "${names[@]}" || rc=$?
	((rc == 0)) || die "failover: the two pxed did not both answer (logs: $OUT/logs/$run-*.log)"
	timeout $((FAIL_SECS + 30)) ip netns exec "$NS_C" tcpdump -i "$CLI_IF" -n -tt -v -l 'udp and src port 67' \
		>"$OUT/raw/failover.tcpdump.txt" 2>"$OUT/logs/failover.tcpdump.log" &
	TCPDUMP_PID=$!
	sleep 1
	# perfdhcp from a population the throughput runs did not use.
	timeout $((FAIL_SECS + 30)) ip netns exec "$NS_C" "${CLI_PIN[@]}" perfdhcp -4 -l "$CLI_IF" -b mac=02:fa:00:00:00:00 \
		-r "$FAIL_RATE" -R "$CLIENTS" -p "$FAIL_SECS" "${WAIT_ARGS[@]}" </dev/null >"$OUT/raw/failover.txt" 2>&1 &
	CLIENT_PID=$!
	sleep "$FAIL_KILL_AT"
	KILL_T=$(date +%s.%N)
	kill -KILL -- "-${PID[pxedA]}" 2>/dev/null || kill -KILL "${PID[pxedA]}"
	wait "${PID[pxedA]}" 2>/dev/null || true
	unset "PID[pxedA]"
	log "failover: killed pxed A at $KILL_T"
	wait "$CLIENT_PID" || true
	CLIENT_PID=
	sleep 1
	kill -INT "$TCPDUMP_PID" 2>/dev/null || true
	wait "$TCPDUMP_PID" 2>/dev/null || true
	stop_server pxedB
	ack_times "$OUT/raw/failover.tcpdump.txt" >"$OUT/raw/failover.acks"
	FAIL_REPORT=$(awk -v k="$KILL_T" '
		NR == 1 { first = $1 }
		NR > 1 { g = $1 - prev; if (g > gmax) { gmax = g; at = prev }
			if (prev <= k && $1 >= k) kgap = g }
		{ prev = $1; if ($1 < k) before++; else after++ ; if ($1 >= k && !fa) fa = $1 }
		END {
			printf "ACKs %d before the kill over %.1f s (%.0f/s), %d after over %.1f s (%.0f/s); ", before, k - first,
				(k > first ? before / (k - first) : 0), after, prev - k, (prev > k ? after / (prev - k) : 0)
			printf "longest gap between two ACKs %.3f s (from %.3f s after the first ACK); the gap spanning the kill %.3f s, first ACK %.3f s after it",
				gmax, at - first, kgap, fa - k
		}' "$OUT/raw/failover.acks")
	stats=$(parse_perfdhcp "$OUT/raw/failover.txt" || echo "- - - - - -")
	FAIL_REPORT+="; perfdhcp DISCOVER sent/answered, REQUEST sent/answered: $(awk '{ print $1 "/" $2 ", " $4 "/" $5 }' <<<"$stats")"
	log "failover: $FAIL_REPORT"
fi

# --- report ------------------------------------------------------------------

median_lower() { sort -g | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'; }
{
	cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
	echo "## Cluster throughput (bench/cluster/run.sh) — $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo
	echo "- Machine: \`nproc\` $(nproc), ${cpu:-unknown CPU}, kernel $(uname -r); load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)."
	echo "- pxed $PXED_DESC; Kea $(kea-dhcp4 -v 2>/dev/null | head -n 1) (memfile, persist, single-threaded); perfdhcp $(perfdhcp -v 2>&1 | head -n 1 | sed 's/^VERSION: //')$( ((NEED_ETCD)) && echo "; etcd $ETCD_VERSION, 3 members in namespaces on one bridge, data on $(df --output=fstype "$WORK" | tail -n 1) under $LEASE_DIR")."
	echo "- $SECS s per rate, $CLIENTS clients, pool $POOL_FIRST–$POOL_LAST, $ROUNDS round(s); held: ≤ $MAX_DROP_PCT % unanswered DISCOVERs and REQUESTs, ≥ $MIN_SENT_PCT % sent. CPUs $([[ $PIN == 1 ]] && echo "pinned (servers and etcd CPU 0, perfdhcp CPU 1)" || echo "not pinned"); perfdhcp at nice $CLI_NICE; Go processes (pxed, etcd) at GOMAXPROCS ${GOMAXPROCS:-default ($(nproc))}${GOGC:+, GOGC $GOGC}; two pxed get $SETTLE s to meet before the load."
	echo "- Command: \`$INVOCATION\` (as root)."
	echo
	echo "| Configuration | Best rate held (DORA/s) | ÷ Kea | Rounds |"
	echo "|---|---:|---:|---|"
	kb=$(awk -F'\t' '$2 == "kea" { print $3 }' "$BEST" | median_lower)
	for c in "${CONFIG_LIST[@]}"; do
		b=$(awk -F'\t' -v c="$c" '$2 == c { print $3 }' "$BEST" | median_lower)
		rat=-
		[[ -n $kb && $kb != 0 && -n $b ]] && rat=$(awk -v a="$b" -v k="$kb" 'BEGIN { printf "%.2f", a / k }')
		printf '| %s | %s | %s | %s |\n' "${LABEL[$c]}" "${b:--}" "$rat" "$(awk -F'\t' -v c="$c" '$2 == c { printf "%s ", $3 }' "$BEST")"
	done
	echo
	[[ -n $FAIL_REPORT ]] && echo "- Failover (two pxed on etcd, perfdhcp at $FAIL_RATE/s for $FAIL_SECS s, pxed A killed with SIGKILL after $FAIL_KILL_AT s; ACK times from tcpdump on the client's port): $FAIL_REPORT." && echo
	echo "Every run (round, rate, configuration, verdict, DISCOVERs answered/sent and loss, REQUESTs answered/sent and loss, ACK/s; CPU time per ACK of the server processes (pxed or Kea) and of the three etcd members, in µs; datagrams the kernel dropped at a full receive buffer, perfdhcp's and the servers'; OFFERs and ACKs the pxed sent, from their metrics):"
	echo
	echo '```'
	awk -F'\t' '{ printf "r%s %6d/s %-6s %-9s DO %7d/%-7d %7.3f%%  RA %7d/%-7d %7.3f%%  %6d ACK/s  cpu/ACK srv %5s etcd %5s us  rcvbuf-drops %d %d  pxed-sent %s\n",
		$1, $2, $3, $4, $6, $5, $7, $9, $8, $10, $11, $13, $14, $15, $17, $16 }' "$RESULTS"
	echo '```'
} | tee "$OUT/report.md"
log "report: $OUT/report.md"
