#!/usr/bin/env bash
# Fuzz smoke: builds every cargo-fuzz target in fuzz/ and runs each for a fixed short time,
# starting from the checked-in seed corpus (fuzz/corpus/<target>/) plus the saved regression
# inputs (fuzz/artifacts-regressions/<target>/). Fails on any crash, panic, timeout or OOM.
#
#   .ci/fuzz-smoke.sh [seconds-per-target]      (default 20)
#
# Longer runs (what docs/performance.md reports), e.g. 10 minutes of one target on one core:
#   cd fuzz && cargo +nightly fuzz run -s none -a <target> corpus/<target> -- -max_total_time=600
# New inputs found by the smoke go to a scratch directory, never into the checked-in corpus.
# Needs nightly (or falls back to stable with RUSTC_BOOTSTRAP=1) and cargo-fuzz (installed from
# crates.io when missing).
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-20}"

if rustup run nightly rustc --version >/dev/null 2>&1; then
  tc=(+nightly)
else
  echo "fuzz-smoke: nightly not found, using the pinned stable toolchain with RUSTC_BOOTSTRAP=1"
  export RUSTC_BOOTSTRAP=1
  tc=()
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz-smoke: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

# -s none: the core forbids unsafe code, so AddressSanitizer adds cost and little coverage;
# -a: debug assertions (integer overflow panics) on, as in tests.
flags=(-s none -a)
cargo "${tc[@]}" fuzz build "${flags[@]}"

scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for t in $(cargo "${tc[@]}" fuzz list); do
  mkdir -p "$scratch/$t" "corpus/$t"
  dirs=("$scratch/$t" "corpus/$t")
  [ -d "artifacts-regressions/$t" ] && dirs+=("artifacts-regressions/$t")
  echo "==> fuzz $t for ${secs}s"
  if cargo "${tc[@]}" fuzz run "${flags[@]}" "$t" "${dirs[@]}" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$scratch/$t.log" 2>&1; then
    grep -E '^(stat::number_of_executed_units|Done )' "$scratch/$t.log" || true
  else
    tail -n 60 "$scratch/$t.log"
    echo "fuzz target $t FAILED (reproducer in fuzz/artifacts/$t/)"
    exit 1
  fi
done
echo "fuzz smoke: all targets ran ${secs}s without findings"
