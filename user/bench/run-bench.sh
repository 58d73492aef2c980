#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-only
#
# make bench: the exec handoff's interrupt blackout at 1, 64, 512 and 2048
# vectors, the library's handoff side by side with the bare floor and a
# naive successor (see blackout_bench.c), as a table, a CSV and a plot:
#
#	build/bench/blackout.txt	the table printed below
#	build/bench/blackout.csv	medians, p10/p90, min/max, ratios
#	build/bench/samples.csv		every handoff and its phases
#	build/bench/blackout.png	blackout against vector count
#
# Usage: user/bench/run-bench.sh [blackout_bench options], e.g.
#	-r ROUNDS -c CHAIN	rounds of one chain per configuration, CHAIN
#				handoffs each (default 4 x 6: 24 handoffs)
#	-s 1,64,512,2048	vector counts
#	-m lib,floor,naive,lib-release,floor-pre
#
# Needs /dev/kvm, the library (`make lib`, built here if missing) and
# gnuplot (gnuplot-nox from apt, installed if missing).  Take figures on a
# quiet machine: the script says so when the load is high.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
out=${VFIO_CPR_BENCH_OUT:-$top/build/bench}

if [ ! -r /dev/kvm ] || [ ! -w /dev/kvm ]; then
	echo "run-bench: /dev/kvm is not usable here: the benchmark needs KVM" >&2
	exit 1
fi
if ! command -v gnuplot >/dev/null; then
	echo "run-bench: installing gnuplot-nox"
	SUDO=
	[ "$(id -u)" -eq 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
		--no-install-recommends gnuplot-nox >/dev/null
fi

make -s -C "$top/user" O="$top/build/user"
make -s -C "$top/user/bench" O="$out"

read -r load _ < /proc/loadavg
cpus=$(nproc)
if awk -v l="$load" -v c="$cpus" 'BEGIN { exit !(l > c / 4) }'; then
	echo "run-bench: load average $load on $cpus CPUs: the figures will be noisy"
fi
echo "run-bench: $(uname -r), $cpus CPUs, load $load"

"$out/blackout_bench" -o "$out/blackout.csv" -a "$out/samples.csv" "$@" |
	tee "$out/blackout.txt"

# Columns of blackout.csv: vectors, then n, median, p10, p90, min, max of
# lib, floor, naive, lib-release, floor-pre in this order.
gnuplot <<EOF
set terminal pngcairo size 1100,700 font ",11" noenhanced
set output "$out/blackout.png"
set datafile separator ","
set key top left box opaque
set logscale xy
set xlabel "vectors (MSI-X, one eventfd irqfd each)"
set ylabel "blackout (ms): handoff start to first interrupt in the new VM"
set title "exec handoff blackout on $(uname -r), $cpus CPUs: median, bars p10 to p90"
set xtics (1, 64, 512, 2048)
set grid xtics ytics mytics
set xrange [0.7:3000]
set yrange [0.3:*]
plot "$out/blackout.csv" skip 1 using 1:(\$3 > 0 ? \$3 : 1/0):4:5 with yerrorlines lw 2 pt 7 title "lib: the project's handoff", \
     "" skip 1 using 1:(\$9 > 0 ? \$9 : 1/0):10:11 with yerrorlines lw 2 pt 5 title "floor: exec + VM + 1 routing + irqfds", \
     "" skip 1 using 1:(\$15 > 0 ? \$15 : 1/0):16:17 with yerrorlines lw 2 pt 9 title "naive: 1 KVM_SET_GSI_ROUTING per vector", \
     "" skip 1 using 1:(\$21 > 0 ? \$21 : 1/0):22:23 with yerrorlines lw 1 dt 2 pt 6 title "lib-release: no relay ahead", \
     "" skip 1 using 1:(\$27 > 0 ? \$27 : 1/0):28:29 with yerrorlines lw 1 dt 2 pt 4 title "floor-pre: floor, old irqfds gone ahead"
EOF
echo "run-bench: $out/blackout.csv, $out/samples.csv, $out/blackout.png"
