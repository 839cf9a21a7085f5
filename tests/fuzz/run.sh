#!/usr/bin/env bash
# run.sh BUILD_DIR [SECONDS] [JOBS]: run every fuzz target built in
# BUILD_DIR/tests/fuzz for SECONDS (default 20) over a copy of its seed
# corpus in a temporary directory (the repository is never written), JOBS
# targets at a time (default: the number of CPUs). Exits non-zero when any
# target crashed, leaked, hit UB or broke one of its properties; the
# reproducer is kept in BUILD_DIR/fuzz-artifacts/<target>/.
set -euo pipefail

build=$(cd "${1:?usage: run.sh BUILD_DIR [SECONDS] [JOBS]}" && pwd)
secs=${2:-20}
jobs=${3:-$(nproc)}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

run_one() {
	local t=$1 dir=$work/$1
	mkdir -p "$dir/corpus" "$build/fuzz-artifacts/$t"
	cp -R "$here/corpus/$t/." "$dir/corpus/"
	"$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
		-artifact_prefix="$build/fuzz-artifacts/$t/" -print_final_stats=1 "$dir/corpus" >"$dir/log" 2>&1 &&
		echo 0 >"$dir/rc" || echo $? >"$dir/rc"
}

targets=()
for c in "$here"/corpus/*/; do
	targets+=("$(basename "$c")")
done

start=$(date +%s)
failed=()
running=0
for t in "${targets[@]}"; do
	if [ ! -x "$build/tests/fuzz/fuzz_$t" ]; then
		echo "fuzz: $build/tests/fuzz/fuzz_$t is not built" >&2
		exit 2
	fi
	run_one "$t" &
	running=$((running + 1))
	if [ "$running" -ge "$jobs" ]; then
		wait -n || true
		running=$((running - 1))
	fi
done
wait
for t in "${targets[@]}"; do
	if [ "$(cat "$work/$t/rc" 2>/dev/null)" = 0 ]; then
		execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t/log")
		echo "fuzz: $t ok (${execs:-?} runs in ${secs}s)"
	else
		failed+=("$t")
		echo "fuzz: $t FAILED; log tail:" >&2
		tail -n 40 "$work/$t/log" >&2
		echo "fuzz: reproducer in $build/fuzz-artifacts/$t/" >&2
	fi
done
echo "fuzz: ${#targets[@]} targets in $(($(date +%s) - start))s"
[ ${#failed[@]} -eq 0 ] || echo "fuzz: failed: ${failed[*]}" >&2
# The closing line in the form test runners share: N passed, N failed.
echo "fuzz: $(( ${#targets[@]} - ${#failed[@]} )) passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
