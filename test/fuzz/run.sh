#!/usr/bin/env bash
# Builds the libFuzzer targets in test/fuzz/ (clang, ASan + UBSan, coverage
# guided) into build-fuzz/ and runs each for a bounded time over a copy of its
# committed seed corpus (test/fuzz/corpus/<target>/), so what a run discovers
# does not grow the repository. Exits non-zero on any crash, failed invariant,
# sanitizer report, timeout or memory blow-up; the input that did it is kept
# as build-fuzz/artifacts/<target>/crash-* (replay it: build-fuzz/<target> FILE).
#
#   test/fuzz/run.sh [seconds-per-target]     (default 20; npm run test:fuzz)
#
# Needs clang with libFuzzer (Debian: clang, libclang-rt-14-dev; .ci/apt/fuzz.list).
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:-20}
[[ "$seconds" =~ ^[0-9]+$ ]] || { echo "usage: test/fuzz/run.sh [seconds-per-target]" >&2; exit 2; }
CXX=${FUZZ_CXX:-clang++}
command -v "$CXX" >/dev/null || { echo "$CXX not found: install clang (see .ci/apt/fuzz.list)" >&2; exit 1; }
out=build-fuzz

# target name, then the engine sources it links (only what the parser needs).
targets=(
  "proxy_protocol native/engine/proxy_protocol.cc native/engine/address.cc"
  "bench_frame native/bench/protocol.cc"
  "bench_server native/bench/server.cc native/bench/protocol.cc native/bench/socket_util.cc native/engine/address.cc"
)
# Options per target. The longest input: a PROXY header is at most
# kProxyV2MaxBytes (4096) and the engine peeks no more, so a little beyond,
# at full length from the start (-len_control=0) so the 4096-byte bound is
# reached within a CI run; a bench frame header is 8 bytes; the bench server
# gets one TCP segment's worth.
declare -A options=(
  [proxy_protocol]="-max_len=4200 -len_control=0"
  [bench_frame]="-max_len=256"
  [bench_server]="-max_len=4096"
)

flags=(-std=c++20 -g -O1 -fno-omit-frame-pointer
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
  -Wall -Wextra -Wpedantic -Wshadow -Wformat=2 -Wimplicit-fallthrough -Werror)

mkdir -p "$out"
for entry in "${targets[@]}"; do
  read -r name sources <<<"$entry"
  echo "build: $out/$name"
  # shellcheck disable=SC2086 # sources is a word list
  "$CXX" "${flags[@]}" "test/fuzz/${name}_fuzz.cc" $sources -o "$out/$name"
done

# A 64 MiB quarantine (default 256) keeps each run small on a shared CI machine.
export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:quarantine_size_mb=64"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
status=0
for entry in "${targets[@]}"; do
  read -r name _ <<<"$entry"
  corpus="$out/corpus/$name"
  artifacts="$out/artifacts/$name/"
  rm -rf "$corpus" && mkdir -p "$corpus" "$artifacts"
  cp test/fuzz/corpus/"$name"/* "$corpus"/
  echo "fuzz: $name for ${seconds}s over a copy of test/fuzz/corpus/$name ($(ls "$corpus" | wc -l) seeds)"
  # -timeout: one input taking over 10 s is a hang; -rss_limit_mb: a blow-up.
  # The corpus copy is the first (writable) directory; new inputs go there.
  # shellcheck disable=SC2086 # options is a word list
  if ! "$out/$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
       ${options[$name]} -artifact_prefix="$artifacts" -print_final_stats=1 \
       "$corpus" >"$out/$name.log" 2>&1; then
    status=1
    # "not ok" and the first error line: what .ci/run's summary quotes for a failed step.
    echo "not ok - fuzz target $name: $(grep -m1 -E 'ERROR: |runtime error:|invariant failed|neither answered' "$out/$name.log" || echo "exit status non-zero")"
    echo "FAILED: $name (log $out/$name.log, input in $artifacts):"
    # The report and its stack (first 30 lines from the first error), then where the input is.
    sed -n '/ERROR: \|runtime error:\|invariant failed\|neither answered/,+30p' "$out/$name.log" | head -n 31 | sed 's/^/  | /'
    grep -E 'Test unit written' "$out/$name.log" | sed 's/^/  /'
  else
    grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' "$out/$name.log" | sed "s/^/  $name /"
    grep -E '^#[0-9]+.*DONE' "$out/$name.log" | tail -n 1 | sed "s/^/  $name /" || true
  fi
done
[ "$status" -eq 0 ] && echo "fuzz: every target ran ${seconds}s without a crash or sanitizer report"
exit "$status"
