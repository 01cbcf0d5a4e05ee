#!/usr/bin/env bash
# bench/boot: power-on -> kernel running, real firmware under QEMU (TCG),
# for pxed and for dnsmasq serving the same boot tree, in one run.
# Run as root from anywhere (the packages of .ci/run must be installed):
#
#   ROUNDS=3 bench/boot/run.sh
#
# Each round boots the same guest (SeaBIOS + QEMU's iPXE ROM, MAC
# 00:16:3e:72:79:e4) three ways, one after the other, each in a fresh
# namespace built by `pxed lab`:
#   pxed-tftp     pxed (DHCP + generated PXELINUX config), PXELINUX over TFTP
#   pxed-tftp-gr  the same with --tftp-io-uring=false (a goroutine per transfer)
#   dnsmasq-tftp  dnsmasq 2.90 with a hand-written pxelinux.cfg file, same tree
#   pxed-http     pxed, iPXE script, kernel and initrd over HTTP
#   uefi-ipxe     OVMF's PXE gets ipxe.efi over TFTP, then iPXE's script,
#                 kernel and initrd over HTTP (virtio NIC without ROM)
#   uefi-http     OVMF's native UEFI HTTP boot: ipxe.efi as a URL, then HTTP
#   sb-grub-tftp  OVMF with Secure Boot: shim, signed GRUB, the generated
#                 grub.cfg, signed kernel and initrd over TFTP
# and prints the medians (MODES="…" runs a subset). Timings are whole boots under software
# emulation: compare within one run only. Needs tcpdump (the capture).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "ROUNDS must be a positive integer" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
for c in go qemu-system-x86_64 dnsmasq tcpdump; do command -v "$c" >/dev/null || { echo "$c not found" >&2; exit 2; }; done
BIN=$(mktemp -d)/pxed
trap 'rm -rf "$(dirname "$BIN")"' EXIT
go build -o "$BIN" ./cmd/pxed
# Three figures per boot: power-on to kernel running (the serial marker),
# and from a capture of the tap (pxed lab --capture, the same for every
# server): when the DHCP ACK went out, and the TFTP phase from the first
# request of a file to the last packet of the last file.
declare -A T D W
read -r -a modes <<<"${MODES:-pxed-tftp pxed-tftp-gr dnsmasq-tftp pxed-http uefi-ipxe uefi-http sb-grub-tftp}"
for r in $(seq 1 "$ROUNDS"); do
	for m in "${modes[@]}"; do
		case $m in
		pxed-tftp) args=() ;;
		pxed-tftp-gr) args=(--serve-arg=--tftp-io-uring=false) ;;
		dnsmasq-tftp) args=(--server dnsmasq) ;;
		pxed-http) args=(--http) ;;
		uefi-ipxe) args=(--uefi) ;;
		uefi-http) args=(--uefi-http) ;;
		sb-grub-tftp) args=(--secure-boot) ;;
		*) echo "unknown mode $m" >&2; exit 2 ;;
		esac
		out=$(timeout 600 "$BIN" lab --capture "${args[@]}" 2>&1) || { echo "$out" >&2; exit 1; }
		s=$(sed -n 's/^power-on to kernel running: \([0-9.]*\) s.*/\1/p' <<<"$out")
		d=$(sed -n 's/^DHCP ACK on the wire: \([0-9.]*\) s.*/\1/p' <<<"$out")
		w=$(sed -n 's/^TFTP on the wire: \([0-9.]*\) s.*/\1/p' <<<"$out")
		[ -n "$s" ] && [ -n "$d" ] && [ -n "$w" ] || { echo "$out" >&2; exit 1; }
		T[$m]="${T[$m]:-} $s"
		D[$m]="${D[$m]:-} $d"
		case $m in pxed-http | uefi-http) ;; *) W[$m]="${W[$m]:-} $w" ;; esac
		echo "round $r $m: $s s to the kernel, DHCP ACK at $d s${w:+, TFTP on the wire $w s}"
	done
done
median() { tr ' ' '\n' <<<"$1" | sed '/^$/d' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo
printf '%-14s %14s %14s %14s   %s\n' mode "to kernel s" "DHCP ACK s" "TFTP wire s" "rounds (to kernel)"
for m in "${modes[@]}"; do
	wm=-
	[ -n "${W[$m]:-}" ] && wm=$(median "${W[$m]}")
	printf '%-14s %14s %14s %14s  %s\n' "$m" "$(median "${T[$m]}")" "$(median "${D[$m]}")" "$wm" "${T[$m]}"
done
echo
for m in "${modes[@]}"; do [ -n "${W[$m]:-}" ] && echo "TFTP on the wire, $m:${W[$m]}"; done; true
echo
d=$(median "${T[dnsmasq-tftp]}")
for m in pxed-tftp pxed-tftp-gr pxed-http; do
	awk -v a="$(median "${T[$m]}")" -v b="$d" -v m="$m" 'BEGIN {printf "%s vs dnsmasq-tftp: %.2fx the time to the kernel (%.1f s %s)\n", m, a/b, (a<b?b-a:a-b), (a<b?"faster":"slower")}'
done
dw=$(median "${W[dnsmasq-tftp]}")
for m in pxed-tftp pxed-tftp-gr; do
	awk -v a="$(median "${W[$m]}")" -v b="$dw" -v m="$m" 'BEGIN {printf "%s vs dnsmasq-tftp: %.2fx the TFTP time on the wire\n", m, a/b}'
done
