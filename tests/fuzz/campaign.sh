#!/usr/bin/env bash
# A long run of one fuzz target, for a count of executions rather than a
# time: PROCS processes (default 2) niced, each doing RUNS / PROCS
# executions from the target's seeds and the corpus kept in
# BUILD/corpus/<target>, which they share and grow. Prints one line: the
# executions libFuzzer counted in all, the time, the commit, and whether
# every process ended clean. A crash, hang, leak or oracle breach leaves
# its input in BUILD/<target>-crash-* (-timeout-*, ...), the logs are
# BUILD/<target>.campaign.N.log, and the exit status is 1.
#
#   tests/fuzz/campaign.sh BUILD TARGET RUNS [PROCS]
#
# Build the targets first (./build.sh fuzz builds them all); do not
# rebuild BUILD while a campaign runs.
set -euo pipefail

usage="usage: campaign.sh BUILD TARGET RUNS [PROCS]"
build=${1:?$usage}
t=${2:?$usage}
runs=${3:?$usage}
procs=${4:-2}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/fuzz/target.sh
. "$here/target.sh"

[ -x "$build/$t" ] || { echo "campaign.sh: $build/$t is not built" >&2; exit 2; }
case $runs$procs in *[!0-9]*) echo "$usage" >&2; exit 2 ;; esac
[ "$procs" -ge 1 ] || { echo "$usage" >&2; exit 2; }
mkdir -p "$build/corpus/$t"
mapfile -t opts < <(options_of "$t")
commit=$(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo unknown)
start=$(date +%s)
pids=()
for i in $(seq 1 "$procs"); do
	share=$((runs / procs + (i <= runs % procs ? 1 : 0)))
	nice -n 19 "$build/$t" "${opts[@]}" -runs="$share" -artifact_prefix="$build/$t-" \
		"$build/corpus/$t" "$here/corpus/$t" >"$build/$t.campaign.$i.log" 2>&1 &
	pids+=("$!")
done
status=0
for p in "${pids[@]}"; do
	wait "$p" || status=1
done
total=0
for i in $(seq 1 "$procs"); do
	n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$build/$t.campaign.$i.log" | tail -n1)
	total=$((total + ${n:-0}))
done
result=clean
[ "$status" = 0 ] || result="FAILED (see $build/$t.campaign.*.log)"
echo "$t: $total executions in $procs processes, $(($(date +%s) - start)) s, at $commit: $result"
exit "$status"
