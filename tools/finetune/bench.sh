#!/bin/sh
# Throughput and peak memory of `finetune prepare` and `finetune validate`
# on a generated export corpus, and OpenAI's Python checker on the same
# training file for comparison. Prints the figures; asserts nothing.
#
#   cargo build --release -p finetune-cli
#   tools/finetune/bench.sh [MEGABYTES=1000]
#
# Env: FINETUNE_BIN (default $CARGO_TARGET_DIR/release/finetune),
# BENCH_DIR (default /tmp/finetune-bench), PYTHON (a python with tiktoken
# and numpy; skipped when absent).
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

/usr/bin/time -f "%e %M" -o "$WORK/prepare.time" "$BIN" prepare --input "$WORK/in" --tenant acme \
  --start-date 2026-10-01 --end-date 2026-10-31 --output "$WORK/out" \
  --max-examples 4000000000 --min-examples 1 > "$WORK/stats.json"
read -r P_SECS P_KB < "$WORK/prepare.time"
CONVS=$("$PYTHON" -c "import json,sys; s=json.load(open(sys.argv[1])); print(s['conversations_read']+s['malformed_lines'])" "$WORK/stats.json")
echo "prepare: $IN_BYTES bytes, $CONVS lines in ${P_SECS}s: $(echo "$IN_BYTES $P_SECS" | awk '{printf "%.1f", $1/$2/1e6}') MB/s, $(echo "$CONVS $P_SECS" | awk '{printf "%.0f", $1/$2}') conversations/s, peak RSS $((P_KB / 1024)) MiB"

# The Python checker only knows system/user/assistant: compare on those lines.
grep -v '"tool' "$WORK/out/train.jsonl" > "$WORK/plain.jsonl" || true
for FILE in "$WORK/out/train.jsonl" "$WORK/plain.jsonl"; do
  BYTES=$(stat -c %s "$FILE")
  LINES=$(wc -l < "$FILE")
  /usr/bin/time -f "%e %M" -o "$WORK/validate.time" "$BIN" validate "$FILE" > "$WORK/report.json" || true
  read -r V_SECS V_KB < "$WORK/validate.time"
  echo "validate $(basename "$FILE"): $BYTES bytes, $LINES examples in ${V_SECS}s: $(echo "$BYTES $V_SECS" | awk '{printf "%.1f", $1/$2/1e6}') MB/s, $(echo "$LINES $V_SECS" | awk '{printf "%.0f", $1/$2}') examples/s, peak RSS $((V_KB / 1024)) MiB"
done

if "$PYTHON" -c "import tiktoken, numpy" 2>/dev/null; then
  BYTES=$(stat -c %s "$WORK/plain.jsonl")
  "$PYTHON" "$HERE/cookbook_check.py" "$WORK/plain.jsonl" > "$WORK/python.json"
  "$PYTHON" - "$WORK/report.json" "$WORK/python.json" "$BYTES" <<'PY'
import json, sys
rust, py, size = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), int(sys.argv[3])
print(f"python checker: {py['seconds']}s, {size / py['seconds'] / 1e6:.1f} MB/s")
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
