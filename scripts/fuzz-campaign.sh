#!/usr/bin/env bash
# A fuzz campaign (not part of CI or scripts/test.sh, which run proto/fuzz/smoke.sh): every
# cargo-fuzz target of the repository, one at a time on one core, each for FUZZ_RUNS
# executions (default 10 million), keeping its corpus between campaigns. Prints a table of
# executions, exec/s, wall time, coverage (edges), features, corpus size and crashes per
# target; exits non-zero if any target crashed.
#
#   nice -n 19 scripts/fuzz-campaign.sh                 # every target, 10 M runs each
#   FUZZ_RUNS=1000000 scripts/fuzz-campaign.sh ids      # some targets, fewer runs
#
# Settings (environment):
#   FUZZ_RUNS         executions per target (libFuzzer -runs=), default 10000000
#   FUZZ_MAX_SECONDS  wall-clock cap per target (libFuzzer -max_total_time=), default 0 (none);
#                     a target stopped by it reports the executions it reached
#   FUZZ_CORPUS_DIR   corpora and crash artifacts, default $REELNET_CACHE/fuzz-campaign
#                     (outside the clone, reused by the next campaign)
#   FUZZ_TARGET_DIR   build directory, default $REELNET_CACHE/fuzz-target
#   FUZZ_TOOLCHAIN    default nightly
#   FUZZ_ARGS         extra libFuzzer flags, e.g. "-max_len=65536"
#
# Crashing inputs land in $FUZZ_CORPUS_DIR/<target>/artifacts/. Once the bug is fixed, copy
# the input to <fuzz crate>/regressions/<target>/: proto/fuzz/smoke.sh replays those.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
. scripts/env.sh

runs="${FUZZ_RUNS:-10000000}"
max_secs="${FUZZ_MAX_SECONDS:-0}"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
store="${FUZZ_CORPUS_DIR:-$REELNET_CACHE/fuzz-campaign}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-$REELNET_CACHE/fuzz-target}"
# The fuzz builds bring their own sanitizer flags; mold flags from env.sh are not for them.
unset CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUSTFLAGS
# The fuzz crates, each its own workspace outside the main one.
crates=(proto/fuzz tracker/fuzz)

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz
fi

mkdir -p "$store"
results="$store/results-$(date -u +%Y%m%dT%H%M%SZ).tsv"
printf 'target\truns\texec/s\twall s\tcov\tft\tcorpus\tcrashes\tstatus\n' >"$results"

wanted=("$@")
selected() {
    [ "${#wanted[@]}" -eq 0 ] && return 0
    local w
    for w in "${wanted[@]}"; do [ "$w" = "$1" ] && return 0; done
    return 1
}

status=0
for crate in "${crates[@]}"; do
    cd "$root/$crate"
    for target in $(cargo +"$toolchain" fuzz list); do
        selected "$target" || continue
        corpus="$store/$target/corpus"
        artifacts="$store/$target/artifacts"
        mkdir -p "$corpus" "$artifacts"
        log="$store/$target/last-run.log"
        echo "== $target: building" >&2
        if ! cargo +"$toolchain" fuzz build "$target" >"$log" 2>&1; then
            tail -n 30 "$log" >&2
            printf '%s\t-\t-\t-\t-\t-\t-\t-\tbuild failed\n' "$target" >>"$results"
            status=1
            continue
        fi
        crashes_before=$(find "$artifacts" -type f | wc -l)
        echo "== $target: $runs runs (log: $log)" >&2
        t0=$(date +%s.%N)
        # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
        if cargo +"$toolchain" fuzz run "$target" "$corpus" -- \
            -runs="$runs" -max_total_time="$max_secs" -print_final_stats=1 \
            -artifact_prefix="$artifacts/" ${FUZZ_ARGS:-} >"$log" 2>&1; then
            outcome=ok
        else
            outcome=crash
            status=1
        fi
        t1=$(date +%s.%N)
        crashes=$(( $(find "$artifacts" -type f | wc -l) - crashes_before ))
        executed=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
        per_sec=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
        # The last status line, e.g. "#10000000 DONE cov: 812 ft: 3130 corp: 402/52Kb ...".
        last=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
        cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
        ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
        corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9A-Za-z]*\).*/\1/p' <<<"$last")
        if [ "$outcome" = ok ] && [ -n "$executed" ] && [ "$executed" -lt "$runs" ]; then
            outcome="stopped at ${max_secs}s"
        fi
        wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f", b - a }')
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$target" "${executed:--}" \
            "${per_sec:--}" "$wall" "${cov:--}" "${ft:--}" "${corp:--}" "$crashes" \
            "$outcome" >>"$results"
        if [ "$outcome" = crash ]; then
            echo "!! $target crashed; input(s) in $artifacts, log $log" >&2
            grep -E 'panicked|ERROR: libFuzzer|SUMMARY' "$log" | head -n 5 >&2 || true
        fi
    done
done

echo
column -t -s $'\t' "$results"
echo
echo "results: $results" >&2
exit "$status"
