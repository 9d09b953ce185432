#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ for a bounded time, on the stable toolchain (docs/fuzz.md):
#   scripts/fuzz.sh                       every target, 20 s each (CI runs `scripts/fuzz.sh 10`)
#   scripts/fuzz.sh 600 expr_parse        one target for ten minutes
#   scripts/fuzz.sh 0                     build, replay the corpus and fuzz/regressions only
#   FUZZ_SANITIZER=none scripts/fuzz.sh   without AddressSanitizer (faster; `cargo fuzz -s none`)
#
# Build: one `cargo build --release` of the fuzz workspace with the flags cargo-fuzz passes (SanitizerCoverage,
# `--cfg fuzzing`, debug assertions, overflow checks) and `-Zsanitizer=address` through RUSTC_BOOTSTRAP=1, so
# neither nightly nor cargo-fuzz is needed. Artifacts go to fuzz/target (git-ignored).
# Run: per target, first every input of fuzz/regressions/<target>/ once (crashes fixed before), then libFuzzer
# for SECONDS over a scratch corpus (fuzz/target/corpus/<target>, where new inputs go) seeded from the committed
# fuzz/corpus/<target> (read only). One summary line per target; target/fuzz-report.json holds the figures.
# Exit status 1 if any target crashed (panic, sanitizer report, OOM over -rss_limit_mb, timeout over -timeout);
# the reproducer's path is printed. Reproduce: fuzz/target/<triple>/release/<target> <path>.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-20}"
[ $# -gt 0 ] && shift
case "$seconds" in '' | *[!0-9]*)
  echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
  exit 2
  ;;
esac
sanitizer="${FUZZ_SANITIZER:-address}"

all_targets=()
for f in fuzz/fuzz_targets/*.rs; do
  all_targets+=("$(basename "$f" .rs)")
done
if [ $# -gt 0 ]; then
  targets=("$@")
  for t in "${targets[@]}"; do
    [ -f "fuzz/fuzz_targets/$t.rs" ] || {
      echo "fuzz.sh: no target $t (targets: ${all_targets[*]})" >&2
      exit 2
    }
  done
else
  targets=("${all_targets[@]}")
fi

# libfuzzer-sys compiles libFuzzer (C++) with the `cc` crate.
if ! command -v c++ >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get install -y --no-install-recommends g++
  else
    echo "fuzz.sh: libFuzzer needs a C++ compiler (apt-get install g++)" >&2
    exit 1
  fi
fi

triple="$(rustc -vV | sed -n 's/^host: //p')"
flags=(
  --cfg fuzzing
  -Cpasses=sancov-module
  -Cllvm-args=-sanitizer-coverage-level=4
  -Cllvm-args=-sanitizer-coverage-inline-8bit-counters
  -Cllvm-args=-sanitizer-coverage-pc-table
  -Cllvm-args=-sanitizer-coverage-trace-compares
  -Cdebug-assertions
  -Coverflow-checks
)
case "$sanitizer" in
  address) flags+=(-Zsanitizer=address) ;;
  none) ;;
  *)
    echo "fuzz.sh: FUZZ_SANITIZER is address or none, not $sanitizer" >&2
    exit 2
    ;;
esac

echo "== fuzz: build ${#all_targets[@]} targets (sanitizer: $sanitizer, $triple)"
build_start=$(date +%s)
# `--target` keeps the flags off build scripts and proc macros (they are not fuzzed and ASan would break
# them); RUSTC_BOOTSTRAP lets stable rustc take `-Zsanitizer`.
RUSTC_BOOTSTRAP=1 RUSTFLAGS="${flags[*]}" CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
  cargo build --manifest-path fuzz/Cargo.toml --release --locked --bins \
  --target "$triple" --target-dir fuzz/target
echo "== fuzz: build took $(($(date +%s) - build_start)) s"

bin_dir="fuzz/target/$triple/release"
mkdir -p fuzz/target/corpus fuzz/target/logs fuzz/artifacts target
report=target/fuzz-report.json
rows=()
failed=()

# The last value of a libFuzzer `-print_final_stats` line, or 0.
stat() { sed -n "s/^stat::$1: *//p" "$2" | tail -1 | grep . || echo 0; }

for t in "${targets[@]}"; do
  bin="$bin_dir/$t"
  log="fuzz/target/logs/$t.log"
  work="fuzz/target/corpus/$t"
  seeds="fuzz/corpus/$t"
  mkdir -p "$work" "$seeds" "fuzz/artifacts/$t"
  : >"$log"
  crashes=0
  artifact=""

  # Regressions: each input once; any failure is a crash (the bug came back).
  regressions=()
  if [ -d "fuzz/regressions/$t" ]; then
    while IFS= read -r -d '' f; do regressions+=("$f"); done \
      < <(find "fuzz/regressions/$t" -type f ! -name '*.md' -print0 | sort -z)
  fi
  if [ ${#regressions[@]} -gt 0 ]; then
    if ! "$bin" -rss_limit_mb=2048 -timeout=10 "${regressions[@]}" >>"$log" 2>&1; then
      crashes=1
      # libFuzzer names each input before running it: the last one named is the one that failed.
      artifact="$(sed -n 's/^Running: //p' "$log" | tail -1)"
    fi
  fi

  if [ "$crashes" = 0 ]; then
    set +e
    "$bin" "$work" "$seeds" \
      -max_total_time="$seconds" -runs="$([ "$seconds" = 0 ] && echo 0 || echo -1)" \
      -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 \
      -artifact_prefix="fuzz/artifacts/$t/" -print_final_stats=1 >>"$log" 2>&1
    rc=$?
    set -e
    if [ "$rc" != 0 ]; then
      crashes=1
      artifact="$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)"
    fi
  fi

  execs=$(stat number_of_executed_units "$log")
  rate=$(stat average_exec_per_sec "$log")
  rss=$(stat peak_rss_mb "$log")
  corpus=$(find "$work" "$seeds" -type f | wc -l)
  printf '%-20s %4ss  executions %10s  exec/s %7s  corpus %5s  peak RSS %5s MB  crashes %s%s\n' \
    "$t" "$seconds" "$execs" "$rate" "$corpus" "$rss" "$crashes" "${artifact:+  artifact: $artifact}"
  if [ "$crashes" != 0 ]; then
    failed+=("$t")
    echo "---- $t: last lines of $log"
    grep -v '^#[0-9]' "$log" | tail -40
    echo "----"
  fi
  rows+=("$(printf '{"target":"%s","seconds":%s,"executions":%s,"exec_per_sec":%s,"corpus":%s,"peak_rss_mb":%s,"crashes":%s,"sanitizer":"%s","artifact":"%s"}' \
    "$t" "$seconds" "$execs" "$rate" "$corpus" "$rss" "$crashes" "$sanitizer" "$artifact")")
done

{
  echo "["
  for i in "${!rows[@]}"; do
    sep=","
    [ "$i" = $((${#rows[@]} - 1)) ] && sep=""
    echo "  ${rows[$i]}$sep"
  done
  echo "]"
} >"$report"
echo "== fuzz: report in $report"

if [ ${#failed[@]} -gt 0 ]; then
  echo "== fuzz: crashes in ${failed[*]} (reproducers above; docs/fuzz.md § A crash)" >&2
  exit 1
fi
echo "== fuzz: ${#targets[@]} targets, no crash"
