#!/bin/sh
# Throughput and peak memory of `finetune prepare` and `finetune validate`
# on a generated export corpus, and OpenAI's Python checker on the same
# training file for comparison. Prints the figures; asserts nothing.
#
#   cargo build --release -p finetune-cli
#   tools/finetune/bench.sh [MEGABYTES=1000]
#
# The machine may be shared: besides wall-clock MB/s, each figure is also
# given per CPU-second (user+sys), which contention distorts far less.
#
# `validate` runs twice on each file, with --threads 1 and on every core,
# and says whether the two reports are identical (they must be).
#
# Env: FINETUNE_BIN (default $CARGO_TARGET_DIR/release/finetune),
# BENCH_DIR (default /tmp/finetune-bench), PYTHON (a python with tiktoken
# and numpy; skipped when absent). Offline, tiktoken reads its vocabulary
# from TIKTOKEN_CACHE_DIR: copy tiktoken-rs's assets/cl100k_base.tiktoken
# there as 9b5ad71b2ce5302211f9c61530b329a4922fc6a4 (the sha1 of the URL
# tiktoken would download it from).
set -eu
MB=${1:-1000}
BIN=${FINETUNE_BIN:-${CARGO_TARGET_DIR:-target}/release/finetune}
WORK=${BENCH_DIR:-/tmp/finetune-bench}
PYTHON=${PYTHON:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
rm -rf "$WORK"
mkdir -p "$WORK"

"$BIN" generate --output "$WORK/in" --megabytes "$MB"
IN_BYTES=$(du -sb "$WORK/in" | cut -f1)

/usr/bin/time -f "%e %M %U %S" -o "$WORK/prepare.time" "$BIN" prepare --input "$WORK/in" --tenant acme \
  --start-date 2026-10-01 --end-date 2026-10-31 --output "$WORK/out" \
  --max-examples 4000000000 --min-examples 1 > "$WORK/stats.json"
read -r P_SECS P_KB P_USR P_SYS < "$WORK/prepare.time"
P_CPU=$(echo "$P_USR $P_SYS" | awk '{print $1+$2}')
CONVS=$("$PYTHON" -c "import json,sys; s=json.load(open(sys.argv[1])); print(s['conversations_read']+s['malformed_lines'])" "$WORK/stats.json")
echo "prepare: $IN_BYTES bytes, $CONVS lines in ${P_SECS}s: $(echo "$IN_BYTES $P_SECS" | awk '{printf "%.1f", $1/$2/1e6}') MB/s, $(echo "$CONVS $P_SECS" | awk '{printf "%.0f", $1/$2}') conversations/s, peak RSS $((P_KB / 1024)) MiB; per CPU-second (${P_CPU}s): $(echo "$IN_BYTES $P_CPU" | awk '{printf "%.1f", $1/$2/1e6}') MB/s, $(echo "$CONVS $P_CPU" | awk '{printf "%.0f", $1/$2}') conversations/s"

# The Python checker only knows system/user/assistant: compare on those lines.
grep -v '"tool' "$WORK/out/train.jsonl" > "$WORK/plain.jsonl" || true
# validate on one thread and on every core: the reports must be identical.
CORES=$(nproc)
for FILE in "$WORK/out/train.jsonl" "$WORK/plain.jsonl"; do
  BYTES=$(stat -c %s "$FILE")
  LINES=$(wc -l < "$FILE")
  for THREADS in $(echo 1 "$CORES" | tr ' ' '\n' | sort -un); do
    /usr/bin/time -f "%e %M %U %S" -o "$WORK/validate.time" "$BIN" validate --threads "$THREADS" "$FILE" > "$WORK/report-$THREADS.json" || true
    read -r V_SECS V_KB V_USR V_SYS < "$WORK/validate.time"
    V_CPU=$(echo "$V_USR $V_SYS" | awk '{print $1+$2}')
    if [ "$THREADS" = 1 ]; then ONE_SECS=$V_SECS ONE_CPU=$V_CPU; fi
    echo "validate $(basename "$FILE") --threads $THREADS: $BYTES bytes, $LINES examples in ${V_SECS}s: $(echo "$BYTES $V_SECS" | awk '{printf "%.1f", $1/$2/1e6}') MB/s, $(echo "$LINES $V_SECS" | awk '{printf "%.0f", $1/$2}') examples/s, peak RSS $((V_KB / 1024)) MiB; per CPU-second (${V_CPU}s): $(echo "$BYTES $V_CPU" | awk '{printf "%.1f", $1/$2/1e6}') MB/s, $(echo "$LINES $V_CPU" | awk '{printf "%.0f", $1/$2}') examples/s"
  done
  cp "$WORK/report-$THREADS.json" "$WORK/report.json"
  if cmp -s "$WORK/report-1.json" "$WORK/report.json"; then
    echo "  reports on 1 and $THREADS threads: identical"
  else
    echo "  reports on 1 and $THREADS threads: DIFFERENT"
  fi
done

if "$PYTHON" -c "import tiktoken, numpy" 2>/dev/null; then
  BYTES=$(stat -c %s "$WORK/plain.jsonl")
  /usr/bin/time -f "%e %U %S" -o "$WORK/python.time" "$PYTHON" "$HERE/cookbook_check.py" "$WORK/plain.jsonl" > "$WORK/python.json"
  read -r Y_SECS Y_USR Y_SYS < "$WORK/python.time"
  "$PYTHON" - "$WORK/report.json" "$WORK/python.json" "$BYTES" "$Y_USR" "$Y_SYS" "$V_CPU" "$Y_SECS" "$V_SECS" "$THREADS" "$ONE_SECS" "$ONE_CPU" <<'PY'
import json, sys
rust, py, size = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), int(sys.argv[3])
py_cpu, rust_cpu = float(sys.argv[4]) + float(sys.argv[5]), float(sys.argv[6])
py_wall, rust_wall, threads = float(sys.argv[7]), float(sys.argv[8]), sys.argv[9]
one_wall, one_cpu = float(sys.argv[10]), float(sys.argv[11])
print(f"python checker (same plain file): {py_wall}s wall ({py['seconds']}s checking), {size / py_wall / 1e6:.1f} MB/s; "
      f"per CPU-second ({py_cpu:.2f}s): {size / py_cpu / 1e6:.1f} MB/s")
print(f"  python/rust, 1 thread: wall {py_wall / one_wall:.1f}x, CPU {py_cpu / one_cpu:.1f}x; "
      f"{threads} threads: wall {py_wall / rust_wall:.1f}x, CPU {py_cpu / rust_cpu:.1f}x")
pairs = [("examples", rust["examples"], py["examples"]),
         ("format_errors", rust["format_errors"], py["format_errors"]),
         ("warnings", rust["warnings"], py["warnings"]),
         ("tokens.sum", rust["tokens"]["sum"], py["tokens"]["sum"]),
         ("tokens.min", rust["tokens"]["min"], py["tokens"]["min"]),
         ("tokens.max", rust["tokens"]["max"], py["tokens"]["max"]),
         ("tokens.p50", rust["tokens"]["p50"], py["tokens"]["p50"]),
         ("assistant_tokens.sum", rust["assistant_tokens"]["sum"], py["assistant_tokens_sum"]),
         ("epochs", rust["epochs"], py["epochs"]),
         ("billing_tokens", rust["billing_tokens"], py["billing_tokens"]),
         ("charged_tokens", rust["charged_tokens"], py["charged_tokens"])]
for name, a, b in pairs:
    print(f"  {name}: rust={a} python={b} {'same' if a == b else 'DIFFERENT'}")
PY
fi
