#!/usr/bin/env bash
# TFTP benchmark: pxed against tftp-hpa and dnsmasq, all on loopback, all in
# the same run. Run as root from anywhere:
#
#   bench/tftp/run.sh               # 3 rounds, prints a Markdown report
#   ROUNDS=1 bench/tftp/run.sh      # quick
#
# Scenarios (each measured for every server, every round; medians reported):
#   a  one 100 MiB transfer, blksize 1468          clients: curl, tftpload, atftp
#   b  the same with windowsize 16 (pxed only)     clients: tftpload, atftp
#   c  storm: 200 concurrent x 10 MiB, blksize 1468 clients: curl, tftpload
#   d  pxed peak RSS while serving 1000 concurrent x 10 MiB (tftpload)
#
# Environment (defaults in brackets):
#   ROUNDS [3]            rounds; the server order rotates every round
#   CLIENT_TIMEOUT [300]  seconds each client invocation may take
#   BIG_MIB [100]  MID_MIB [10]  STORM_N [200]  RSS_N [1000]  BLKSIZE [1468]
#   WINDOWSIZE [16]       window for scenario b
#   PXED_BIN              use this pxed binary instead of building one
#   PXED_REV              build pxed from this git revision (e.g. HEAD)
#                         instead of the working tree
#   PXED_ARGS             extra `pxed serve` flags, e.g. --tftp-single-port
#   KEEP_WORK=1           keep the temporary directory (tree, server logs)
#
# Only loopback addresses are used: pxed 127.0.0.2:69, pxed-gr 127.0.0.5:69,
# tftp-hpa 127.0.0.3:69, dnsmasq 127.0.0.4:69. Measured times are wall-clock times of the whole
# client invocation (for the storms: from launching the first client until
# the last one exits), so every client is timed the same way.
set -euo pipefail
export LC_ALL=C

# The command line to report: the settings given in the environment, then us.
INVOCATION=
for v in ROUNDS CLIENT_TIMEOUT BIG_MIB MID_MIB STORM_N RSS_N BLKSIZE WINDOWSIZE PXED_BIN PXED_REV PXED_ARGS; do
	[[ -n ${!v:-} ]] && INVOCATION+="$v=$(printf %q "${!v}") "
done
INVOCATION+="bench/tftp/run.sh"

ROUNDS=${ROUNDS:-3}
CLIENT_TIMEOUT=${CLIENT_TIMEOUT:-300}
BIG_MIB=${BIG_MIB:-100}
MID_MIB=${MID_MIB:-10}
STORM_N=${STORM_N:-200}
RSS_N=${RSS_N:-1000}
BLKSIZE=${BLKSIZE:-1468}
WINDOWSIZE=${WINDOWSIZE:-16}
PXED_ARGS=${PXED_ARGS:-}
KEEP_WORK=${KEEP_WORK:-}

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
# pxed-gr is the same pxed with --tftp-io-uring=false: a goroutine per
# transfer instead of io_uring workers, to compare pxed's two engines.
SERVERS=(pxed pxed-gr tftp-hpa dnsmasq)
declare -A ADDR=([pxed]=127.0.0.2 [pxed-gr]=127.0.0.5 [tftp-hpa]=127.0.0.3 [dnsmasq]=127.0.0.4)
declare -A PID=()       # server name -> pid (also its process group: setsid)
declare -A RESTARTS=()  # server name -> unexpected deaths
SAMPLER_PID=

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
# shellcheck source=bench/lib.sh
source "$REPO/bench/lib.sh"

# --- preflight ---------------------------------------------------------------

[[ $EUID -eq 0 ]] || die "run as root: the servers bind port 69 and tftp-hpa/dnsmasq run as root"
for cmd in go git curl atftp in.tftpd dnsmasq timeout setsid ss; do
	command -v "$cmd" >/dev/null || die "$cmd not found"
done
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive integer"
for s in "${SERVERS[@]}"; do
	if ss -Hlun "src ${ADDR[$s]}:69" | grep -q .; then
		die "${ADDR[$s]}:69 is already in use"
	fi
done

WORK=$(mktemp -d /tmp/tftpbench.XXXXXX)
# Scratch space for clients that must write what they receive (atftp).
SCRATCH=$WORK
[[ -d /dev/shm && -w /dev/shm ]] && SCRATCH=$(mktemp -d /dev/shm/tftpbench.XXXXXX)
TREE=$WORK/tree
LOGS=$WORK/logs
RESULTS=$WORK/results.tsv  # scenario client server round seconds|FAIL
RSSFILE=$WORK/rss.tsv      # round seconds|FAIL idle_kib sampled_peak_kib hwm_kib
mkdir -p "$TREE" "$LOGS" "$WORK/bin" "$WORK/state" "$WORK/storm"
: >"$RESULTS"
: >"$RSSFILE"


cleanup() {
	local rc=$? s
	trap - EXIT INT TERM
	[[ -n $SAMPLER_PID ]] && { kill "$SAMPLER_PID" 2>/dev/null || true; }
	for s in "${!PID[@]}"; do stop_server "$s"; done
	((rc == 0)) || tail_logs
	[[ $SCRATCH != "$WORK" ]] && rm -rf "$SCRATCH"
	[[ -n $KEEP_WORK ]] && log "kept $WORK" || rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- build -------------------------------------------------------------------

build_pxed ""
(cd "$REPO" && go build -o "$WORK/bin/tftpload" ./bench/tftpload) || die "building bench/tftpload failed"
TFTPLOAD=$WORK/bin/tftpload

# --- boot tree ---------------------------------------------------------------

BIG_BYTES=$((BIG_MIB << 20))
MID_BYTES=$((MID_MIB << 20))
log "creating $BIG_MIB MiB and $MID_MIB MiB random files in $TREE"
head -c "$BIG_BYTES" /dev/urandom >"$TREE/big"
head -c "$MID_BYTES" /dev/urandom >"$TREE/mid"
echo ready >"$TREE/tiny"
chmod 755 "$TREE"
chmod 644 "$TREE"/* # dnsmasq serves only world-readable files when run as root

# --- servers -----------------------------------------------------------------

# Each server runs in its own session (setsid without forking: a background job
# of a non-interactive shell is not a process-group leader), so its pid is its
# process group and stop_server also ends tftp-hpa's per-transfer children.
start_server() {
	local name=$1
	case $name in
	pxed)
		# Every benchmark client is 127.0.0.1: lift the per-client cap.
		# shellcheck disable=SC2086 # PXED_ARGS is a list of flags
		setsid "$PXED" serve --tftp-root "$TREE" --tftp-addr "${ADDR[pxed]}:69" --http-addr "" \
			--state-dir "$WORK/state" --tftp-max-transfers-per-client 5000 $PXED_ARGS </dev/null >>"$LOGS/pxed.log" 2>&1 &
		;;
	pxed-gr)
		# shellcheck disable=SC2086 # PXED_ARGS is a list of flags
		setsid "$PXED" serve --tftp-root "$TREE" --tftp-addr "${ADDR[pxed-gr]}:69" --http-addr "" \
			--state-dir "$WORK/state-gr" --tftp-max-transfers-per-client 5000 --tftp-io-uring=false $PXED_ARGS </dev/null >>"$LOGS/pxed-gr.log" 2>&1 &
		;;
	tftp-hpa)
		setsid in.tftpd -L -s "$TREE" -u root -a "${ADDR[tftp-hpa]}:69" \
			</dev/null >>"$LOGS/tftp-hpa.log" 2>&1 &
		;;
	dnsmasq)
		# No --interface=lo: it would also bind 127.0.0.1 and ::1.
		# --tftp-max: the default of 50 concurrent transfers would refuse the storm.
		setsid dnsmasq --keep-in-foreground --port=0 --enable-tftp --tftp-root="$TREE" \
			--tftp-max=$((STORM_N + 100)) --listen-address="${ADDR[dnsmasq]}" --bind-interfaces \
			--user=root --group=root --pid-file="$WORK/dnsmasq.pid" --log-facility="$LOGS/dnsmasq.log" \
			</dev/null >>"$LOGS/dnsmasq.out" 2>&1 &
		;;
	esac
	PID[$name]=$!
	wait_ready "$name"
}

# wait_ready fetches a tiny file until the server answers (10 s at most).
wait_ready() {
	local name=$1 i out=$WORK/ready.$1
	for ((i = 0; i < 50; i++)); do
		kill -0 "${PID[$name]}" 2>/dev/null || die "$name exited at startup"
		if timeout 2 curl -s -o "$out" "tftp://${ADDR[$name]}/tiny" 2>/dev/null &&
			[[ $(<"$out") == ready ]]; then
			return 0
		fi
		sleep 0.2
	done
	die "$name does not answer on ${ADDR[$name]}:69"
}

# ensure_alive restarts a server that died (crashed, or was killed by someone
# else on a shared machine); the report counts such restarts.
ensure_alive() {
	local name=$1
	kill -0 "${PID[$name]}" 2>/dev/null && return 0
	log "WARNING: $name (pid ${PID[$name]}) died unexpectedly; restarting it"
	RESTARTS[$name]=$((${RESTARTS[$name]:-0} + 1))
	wait "${PID[$name]}" 2>/dev/null || true
	unset "PID[$name]"
	start_server "$name"
}

# --- clients -----------------------------------------------------------------
# Each returns 0 only if the transfer completed with the expected size.

curl_get() { # addr file bytes
	local got
	got=$(timeout "$CLIENT_TIMEOUT" curl -s --tftp-blksize "$BLKSIZE" -o /dev/null \
		-w '%{size_download}' "tftp://$1/$2") || return 1
	[[ $got == "$3" ]]
}

tftpload_get() { # addr file bytes n [windowsize]
	local out=$WORK/tftpload.out rc=0
	timeout "$CLIENT_TIMEOUT" "$TFTPLOAD" -server "$1:69" -file "$2" -expect-size "$3" -n "$4" \
		-blksize "$BLKSIZE" -windowsize "${5:-0}" -timeout "$((CLIENT_TIMEOUT - 5))s" >"$out" 2>&1 || rc=$?
	cat "$out" >>"$LOGS/tftpload.log"
	((rc == 0)) || sed 's/^/  /' "$out" >&2
	return "$rc"
}

atftp_get() { # addr file bytes [windowsize]
	local out=$SCRATCH/atftp.out opts=()
	[[ -n ${4:-} ]] && opts+=(--option "windowsize $4")
	opts+=(--option "blksize $BLKSIZE")
	rm -f "$out"
	timeout "$CLIENT_TIMEOUT" atftp "${opts[@]}" -g -r "$2" -l "$out" "$1" 69 >>"$LOGS/atftp.log" 2>&1 || return 1
	[[ $(stat -c %s "$out") == "$3" ]] || return 1
	rm -f "$out"
}

curl_storm() { # addr file bytes n
	local dir=$WORK/storm i pids=() bad=0
	rm -f "$dir"/*
	for ((i = 0; i < $4; i++)); do
		timeout "$CLIENT_TIMEOUT" curl -s --tftp-blksize "$BLKSIZE" -o /dev/null \
			-w '%{size_download}' "tftp://$1/$2" >"$dir/$i" 2>/dev/null &
		pids+=($!)
	done
	for i in "${!pids[@]}"; do
		if ! wait "${pids[$i]}" || [[ $(<"$dir/$i") != "$3" ]]; then
			bad=$((bad + 1))
		fi
	done
	((bad == 0)) || log "  curl storm: $bad of $4 transfers failed"
	((bad == 0))
}

# measure SCENARIO CLIENT SERVER ROUND -- command...: times the command and
# appends a result line.
measure() {
	local scen=$1 client=$2 server=$3 round=$4 t0 t1 secs
	shift 5
	ensure_alive "$server"
	t0=$EPOCHREALTIME
	if "$@"; then
		t1=$EPOCHREALTIME
		secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	else
		secs=FAIL
	fi
	kill -0 "${PID[$server]}" 2>/dev/null || secs=FAIL # died during the run
	printf '%s\t%s\t%s\t%s\t%s\n' "$scen" "$client" "$server" "$round" "$secs" >>"$RESULTS"
	log "  round $round  $scen  $client -> $server: $secs s"
}

# rss_run ROUND: restart pxed so that VmHWM covers this run only, then sample
# its VmRSS every 100 ms while tftpload runs RSS_N transfers of the 10 MiB file.
rss_kib() { awk -v k="$2:" '$1 == k { print $2 }' "/proc/$1/status" 2>/dev/null || true; }
rss_run() {
	local round=$1 pid idle peak hwm t0 t1 secs
	stop_server pxed
	start_server pxed
	pid=${PID[pxed]}
	sleep 1
	idle=$(rss_kib "$pid" VmRSS)
	(
		peak=0
		while [[ -r /proc/$pid/status ]]; do
			v=$(rss_kib "$pid" VmRSS)
			[[ -n $v ]] && ((v > peak)) && peak=$v && echo "$peak" >"$WORK/rss.peak"
			sleep 0.1
		done
	) &
	SAMPLER_PID=$!
	t0=$EPOCHREALTIME
	if tftpload_get "${ADDR[pxed]}" mid "$MID_BYTES" "$RSS_N"; then
		t1=$EPOCHREALTIME
		secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	else
		secs=FAIL
	fi
	hwm=$(rss_kib "$pid" VmHWM)
	kill "$SAMPLER_PID" 2>/dev/null || true
	wait "$SAMPLER_PID" 2>/dev/null || true
	SAMPLER_PID=
	peak=$(cat "$WORK/rss.peak" 2>/dev/null || echo 0)
	rm -f "$WORK/rss.peak"
	kill -0 "$pid" 2>/dev/null || secs=FAIL
	printf '%s\t%s\t%s\t%s\t%s\n' "$round" "$secs" "${idle:-0}" "$peak" "${hwm:-0}" >>"$RSSFILE"
	log "  round $round  d  tftpload x$RSS_N -> pxed: $secs s, idle ${idle:-?} KiB, peak VmRSS $peak KiB, VmHWM ${hwm:-?} KiB"
}

# --- run ---------------------------------------------------------------------

for s in "${SERVERS[@]}"; do start_server "$s"; done
log "servers up: pxed ${PID[pxed]}, pxed-gr ${PID[pxed-gr]}, tftp-hpa ${PID[tftp-hpa]}, dnsmasq ${PID[dnsmasq]}; pxed is $PXED_DESC"

SC_A="a: 1 x $BIG_MIB MiB"
SC_B="b: 1 x $BIG_MIB MiB, windowsize $WINDOWSIZE"
SC_C="c: storm $STORM_N x $MID_MIB MiB"

for ((r = 1; r <= ROUNDS; r++)); do
	# Rotate the server order every round: pxed first, then second, ...
	order=()
	for ((i = 0; i < ${#SERVERS[@]}; i++)); do
		order+=("${SERVERS[$(((i + r - 1) % ${#SERVERS[@]}))]}")
	done
	log "round $r/$ROUNDS, server order: ${order[*]}"
	for s in "${order[@]}"; do
		a=${ADDR[$s]}
		measure "$SC_A" curl "$s" "$r" -- curl_get "$a" big "$BIG_BYTES"
		measure "$SC_A" tftpload "$s" "$r" -- tftpload_get "$a" big "$BIG_BYTES" 1
		measure "$SC_A" atftp "$s" "$r" -- atftp_get "$a" big "$BIG_BYTES"
	done
	for s in pxed pxed-gr; do
		a=${ADDR[$s]}
		measure "$SC_B" tftpload "$s" "$r" -- tftpload_get "$a" big "$BIG_BYTES" 1 "$WINDOWSIZE"
		measure "$SC_B" atftp "$s" "$r" -- atftp_get "$a" big "$BIG_BYTES" "$WINDOWSIZE"
	done
	for s in "${order[@]}"; do
		a=${ADDR[$s]}
		measure "$SC_C" curl "$s" "$r" -- curl_storm "$a" mid "$MID_BYTES" "$STORM_N"
		measure "$SC_C" tftpload "$s" "$r" -- tftpload_get "$a" mid "$MID_BYTES" "$STORM_N"
	done
	rss_run "$r"
done

# --- report ------------------------------------------------------------------

# median reads numbers, one a line, and prints their median (empty if none).
median() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) exit
		if (NR % 2) printf "%.3f\n", v[(NR + 1) / 2]
		else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# med SCENARIO CLIENT SERVER: median seconds over the rounds that succeeded.
med() {
	awk -F'\t' -v s="$1" -v c="$2" -v v="$3" '$1 == s && $2 == c && $3 == v && $5 != "FAIL" { print $5 }' "$RESULTS" | median
}
okcount() {
	awk -F'\t' -v s="$1" -v c="$2" -v v="$3" '$1 == s && $2 == c && $3 == v { n++; if ($5 != "FAIL") ok++ }
		END { printf "%d/%d", ok, n }' "$RESULTS"
}
ratio() { # a b -> a/b with 2 decimals, or "-"
	if [[ -n $1 && -n $2 ]]; then awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; else echo -; fi
}

report_row() { # scenario client server total_mib
	local scen=$1 client=$2 server=$3 mib=$4 m hpa base rate vs ba=-
	m=$(med "$scen" "$client" "$server")
	hpa=$(med "$scen" "$client" tftp-hpa)
	rate=-
	[[ -n $m ]] && rate=$(awk -v b="$mib" -v s="$m" 'BEGIN { printf "%.1f", b / s }')
	vs=$(ratio "$m" "$hpa")
	if [[ $server == pxed* && $scen == "$SC_B" ]]; then
		base=$(med "$SC_A" "$client" "$server")
		ba=$(ratio "$m" "$base")
	fi
	printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$scen" "$client" "$server" "${m:-FAIL}" "$rate" "$vs" "$ba" \
		"$(okcount "$scen" "$client" "$server")"
}

{
	echo "Date: $(date -u '+%Y-%m-%d %H:%M UTC'); machine: $(nproc) CPUs, kernel $(uname -r); rounds: $ROUNDS; pxed: $PXED_DESC"
	echo
	echo "| Scenario | Client | Server | Median s | MiB/s | Time ÷ tftp-hpa | Time (b) ÷ (a) | OK rounds |"
	echo "|---|---|---|---:|---:|---:|---:|---:|"
	for client in curl tftpload atftp; do
		for s in "${SERVERS[@]}"; do report_row "$SC_A" "$client" "$s" "$BIG_MIB"; done
	done
	for client in tftpload atftp; do
		for s in pxed pxed-gr; do report_row "$SC_B" "$client" "$s" "$BIG_MIB"; done
	done
	for client in curl tftpload; do
		for s in "${SERVERS[@]}"; do report_row "$SC_C" "$client" "$s" "$((STORM_N * MID_MIB))"; done
	done
	echo
	echo "- All transfers are octet mode, blksize $BLKSIZE."
	echo "- Time ÷ tftp-hpa: median time of this server over that of tftp-hpa, same scenario and client (below 1 = faster)."
	echo "- Time (b) ÷ (a): pxed with windowsize $WINDOWSIZE over the same pxed without, same client."
	echo "- pxed: io_uring workers (the default); pxed-gr: the same binary with --tftp-io-uring=false (a goroutine per transfer)."
	echo "- MiB/s for the storm is aggregate: $STORM_N x $MID_MIB MiB over the wall time of the whole storm."
	echo
	echo "| Scenario d: pxed, $RSS_N concurrent x $MID_MIB MiB (tftpload) | Median s | Idle VmRSS MiB | Peak VmRSS MiB (sampled every 100 ms) | VmHWM MiB | OK rounds |"
	echo "|---|---:|---:|---:|---:|---:|"
	d_secs=$(awk -F'\t' '$2 != "FAIL" { print $2 }' "$RSSFILE" | median)
	d_idle=$(awk -F'\t' '{ print $3 / 1024 }' "$RSSFILE" | median)
	d_peak=$(awk -F'\t' '{ print $4 / 1024 }' "$RSSFILE" | median)
	d_hwm=$(awk -F'\t' '{ print $5 / 1024 }' "$RSSFILE" | median)
	d_ok=$(awk -F'\t' '{ n++; if ($2 != "FAIL") ok++ } END { printf "%d/%d", ok, n }' "$RSSFILE")
	printf '| medians over rounds | %s | %.1f | %.1f | %.1f | %s |\n' "${d_secs:-FAIL}" "${d_idle:-0}" "${d_peak:-0}" "${d_hwm:-0}" "$d_ok"
	echo
	if ((${#RESTARTS[@]} > 0)); then
		for s in "${!RESTARTS[@]}"; do
			echo "WARNING: $s died unexpectedly ${RESTARTS[$s]} time(s) and was restarted (a measurement it died in counts as FAIL)."
		done
		echo
	fi
	echo "Raw seconds per round (round: seconds):"
	echo
	echo '```'
	awk -F'\t' '{ k = $1 " | " $2 " | " $3; if (!(k in v)) order[++n] = k; v[k] = v[k] " " $4 ":" $5 }
		END { for (i = 1; i <= n; i++) print order[i] " |" v[order[i]] }' "$RESULTS"
	awk -F'\t' '{ printf "d: pxed RSS | round %s: %s s, idle %d KiB, peak %d KiB, VmHWM %d KiB\n", $1, $2, $3, $4, $5 }' "$RSSFILE"
	echo '```'
	echo
	echo "Command: \`$INVOCATION\`"
	echo
	echo "Servers:"
	echo
	echo '```'
	echo "pxed serve --tftp-root TREE --tftp-addr ${ADDR[pxed]}:69 --http-addr \"\" --state-dir STATE${PXED_ARGS:+ $PXED_ARGS}"
	echo "pxed serve --tftp-root TREE --tftp-addr ${ADDR[pxed-gr]}:69 --http-addr \"\" --state-dir STATE2 --tftp-io-uring=false${PXED_ARGS:+ $PXED_ARGS}"
	echo "in.tftpd -L -s TREE -u root -a ${ADDR[tftp-hpa]}:69"
	echo "dnsmasq --keep-in-foreground --port=0 --enable-tftp --tftp-root=TREE --tftp-max=$((STORM_N + 100)) --listen-address=${ADDR[dnsmasq]} --bind-interfaces --user=root --group=root --pid-file=... --log-facility=..."
	echo '```'
	echo
	echo "Clients (each under \`timeout $CLIENT_TIMEOUT\`; ADDR is the server's address):"
	echo
	echo '```'
	echo "curl -s --tftp-blksize $BLKSIZE -o /dev/null -w '%{size_download}' tftp://ADDR/FILE        # storm: $STORM_N of these in the background, then wait"
	echo "tftpload -server ADDR:69 -file FILE -expect-size BYTES -n N -blksize $BLKSIZE -windowsize 0|$WINDOWSIZE -timeout $((CLIENT_TIMEOUT - 5))s"
	echo "atftp [--option \"windowsize $WINDOWSIZE\"] --option \"blksize $BLKSIZE\" -g -r FILE -l /dev/shm/... ADDR 69"
	echo '```'
}

fails=$(awk -F'\t' '$5 == "FAIL"' "$RESULTS" | wc -l)
fails=$((fails + $(awk -F'\t' '$2 == "FAIL"' "$RSSFILE" | wc -l)))
if ((fails > 0)); then
	log "$fails measurement(s) failed; see the OK rounds column"
	exit 1
fi
