#!/usr/bin/env bash
# Run the fuzz targets built in BUILD (tests/fuzz/fuzz.mk), each for SECONDS,
# JOBS at a time (default 2), from the seeds in tests/fuzz/corpus/<target>
# and the corpus kept in BUILD/corpus/<target>, with the target's
# dictionary. Prints one line per target (executions, rate, coverage,
# verdict); a crash, hang, leak or oracle breach leaves its input in
# BUILD/<target>-crash-* (-timeout-*, -leak-*) and the log in
# BUILD/<target>.log, and the exit status is 1. The inputs kept in
# tests/fuzz/findings (named <target without fuzz_>-<what it found>) run
# first, as regression tests.
#
#   tests/fuzz/run.sh BUILD SECONDS [TARGET...]     (JOBS=2 in the environment)
set -euo pipefail

build=${1:?usage: run.sh BUILD SECONDS [TARGET...]}
seconds=${2:?usage: run.sh BUILD SECONDS [TARGET...]}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
jobs=${JOBS:-2}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
	mapfile -t targets < <(cd "$here/corpus" && ls)
fi
# shellcheck source=tests/fuzz/target.sh
. "$here/target.sh"

run_one() {
	local t=$1 rc=0
	mkdir -p "$build/corpus/$t"
	rm -f "$build/$t"-crash-* "$build/$t"-timeout-* "$build/$t"-leak-* "$build/$t"-oom-*
	local opts
	mapfile -t opts < <(options_of "$t")
	# Inputs that once failed (tests/fuzz/findings/<target without fuzz_>-*)
	# are replayed first: each is a regression test.
	local found=("$here/findings/${t#fuzz_}"-*)
	if [ -e "${found[0]}" ]; then
		"$build/$t" -timeout=20 "${found[@]}" >"$build/$t.log" 2>&1 || { echo "$?" >"$build/$t.rc"; return; }
	fi
	"$build/$t" "${opts[@]}" -max_total_time="$seconds" -artifact_prefix="$build/$t-" \
		"$build/corpus/$t" "$here/corpus/$t" >"$build/$t.log" 2>&1 || rc=$?
	echo "$rc" >"$build/$t.rc"
}

for t in "${targets[@]}"; do
	[ -x "$build/$t" ] || { echo "run.sh: $build/$t is not built" >&2; exit 2; }
done
running=0
for t in "${targets[@]}"; do
	if [ "$running" -ge "$jobs" ]; then
		wait -n || true
		running=$((running - 1))
	fi
	run_one "$t" &
	running=$((running + 1))
done
wait || true

status=0
printf '%-20s %12s %9s %7s  %s\n' target executions exec/s cov result
for t in "${targets[@]}"; do
	log=$build/$t.log
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
	cov=$({ grep -oE 'cov: [0-9]+' "$log" || true; } | tail -n1 | cut -d' ' -f2)
	rc=$(cat "$build/$t.rc" 2>/dev/null || echo 1)
	result=ok
	if [ "$rc" != 0 ]; then
		result="FAILED (exit $rc, $(grep -m1 -oE 'fuzz oracle: .*|ERROR: [A-Za-z]+: [a-z-]+|runtime error: .*' "$log" || echo 'see log'); log: $log)"
		status=1
	fi
	printf '%-20s %12s %9s %7s  %s\n' "$t" "${runs:--}" "${rate:--}" "${cov:--}" "$result"
done
exit "$status"
