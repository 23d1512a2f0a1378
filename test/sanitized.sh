#!/usr/bin/env bash
# Runs the test suite against a debug build of the addon compiled with a
# sanitizer: `test/sanitized.sh address` (AddressSanitizer),
# `test/sanitized.sh undefined` (UndefinedBehaviorSanitizer) or
# `test/sanitized.sh address,undefined` (both in one build and one run: what CI
# does, half the time of two runs). Extra arguments go to tap (e.g. a single
# test file). npm run test:sanitizers / test:asan / test:ubsan call it.
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:?usage: test/sanitized.sh address|undefined|address,undefined [tap args]}
shift
case "$kind" in
  address) out=build-asan ;;
  undefined) out=build-ubsan ;;
  address,undefined) out=build-asan-ubsan ;;
  *) echo "unknown sanitizer '$kind': expected address, undefined or address,undefined" >&2; exit 2 ;;
esac

npx cmake-js compile --debug --out "$out" --CDFULCRUM_SANITIZE="$kind" >"$out.log" 2>&1 || {
  cat "$out.log" >&2; exit 1; }
addon=$(find "$out" -name fulcrum.node -print -quit)
[ -n "$addon" ] || { echo "no fulcrum.node under $out" >&2; exit 1; }
export FULCRUM_NATIVE="$PWD/$addon"
# Load tests read this to run fewer rounds (a sanitized build is several
# times slower; what it checks is memory and UB on every path, not volume).
export FULCRUM_SANITIZER="$kind"

if [[ "$kind" == address* ]]; then
  # Node itself is not instrumented, so the ASan runtime must be loaded first.
  # Leak checking is off: V8 and Node keep allocations until exit by design,
  # which LeakSanitizer would report on every run.
  export LD_PRELOAD="$(g++ -print-file-name=libasan.so)"
  # A 64 MiB quarantine (default 256): freed memory is still held back long
  # enough to catch a use after free, without pushing the 50 x 64 MiB relay
  # test past its memory bound, which is there to catch buffering in the relay.
  export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=0:quarantine_size_mb=64"
fi
if [[ "$kind" == *undefined ]]; then
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
fi
# With no test named, the tests that run our native code: test/engine and
# test/process (test/unit is pure TypeScript and tables). Left out: the tests
# that drive mostly TypeScript against external programs (databases, a
# browser, dnsmasq), where a sanitizer checks little of ours and its LD_PRELOAD
# would reach those programs (initdb crawls, chromium's launcher script
# breaks); and the process tests of the command line itself (argument
# parsing, output text, reload and systemd messages), whose native paths the
# other process tests run too; and the engine tests of the control plane's own
# logic over an engine the other tests already drive (health checking, HA
# tracking, the admin API and its limits, runtime backends, CSV and log
# output formats), the balancing algorithms (the picker runs sanitized in
# ctest's engine_test) and the bench server (fuzzed, and counted by
# bench-counting): the sanitized run must fit CI's time. Also left out for
# now: test/process/upgrade.test.ts, which once hung past tap's 300 s under
# the sanitizer (the newest process served and answered SIGTERM at once; the
# test had not stopped it): under investigation; it runs in npm test.
if [ $# -eq 0 ]; then
  mapfile -t tests < <(ls test/engine/*.test.ts test/process/*.test.ts |
    grep -v -E '/(health-(postgres|mysql|redis|checks|monitor|runtime)|status-page|pg-cancel|first-verdict|dns-discovery)\.test\.ts$' |
    grep -v -E '/engine/(ha-tracking|backend-api|admin-(api|limits)|status-csv|connection-log-output|balancing)\.test\.ts$' |
    grep -v -E '/process/(cli|bench-cli|bench-server|health-cli|systemd|udp-datapath-check|reload|maglev-consistency|upgrade)\.test\.ts$')
  set -- "${tests[@]}"
fi
echo "sanitizer: $kind, addon: $FULCRUM_NATIVE"
npx tsc -p tsconfig.json
npx tap "$@"
