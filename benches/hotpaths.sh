#!/usr/bin/env bash
# Instructions per item on the hot paths, counted by callgrind (the same on
# any machine for the same build): builds benches/hotpaths.rs in release,
# runs each case under valgrind collecting only inside its measure_*
# function, and prints instructions per repetition and per item.
# Usage: benches/hotpaths.sh [case ...]   (parse store copy encode-node encode-list
#   encode-node-serde encode-list-serde list-pods list-pods-kept merge)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo bench --bench hotpaths --no-run >/dev/null 2>&1
bin=$(ls -t "$target"/release/deps/hotpaths-* | grep -v '\.d$' | head -1)
out=$(mktemp -d)
cases=("$@")
[ ${#cases[@]} -eq 0 ] && cases=(parse store copy encode-node encode-list)
printf '%-12s %6s %16s %10s %14s\n' case reps "instr/rep" items "instr/item"
for case in "${cases[@]}"; do
  case "$case" in
    parse) reps=200; fn=measure_parse ;;
    store) reps=50; fn=measure_store ;;
    copy) reps=50; fn=measure_copy ;;
    encode-node) reps=200; fn=measure_encode ;;
    encode-list) reps=1; fn=measure_encode ;;
    encode-node-serde) reps=200; fn=measure_encode_serde ;;
    encode-list-serde) reps=1; fn=measure_encode_serde ;;
    list-pods) reps=1; fn=measure_list ;;
    list-pods-kept) reps=10; fn=measure_list ;;
    merge) reps=1; fn=measure_merge ;;
    *) echo "unknown case $case" >&2; exit 2 ;;
  esac
  line=$(valgrind --tool=callgrind --callgrind-out-file="$out/$case.cg" --collect-atstart=no \
    "--toggle-collect=*hotpaths::$fn*" "$bin" "$case" "$reps" 2>/dev/null)
  items=$(echo "$line" | sed -E 's/.* of ([0-9]+) .*/\1/')
  unit=$(echo "$line" | sed -E 's/.* of [0-9]+ ([a-z]+),.*/\1/')
  # awk reads to the end (grep -m1 would close the pipe and fail the pipeline).
  total=$(callgrind_annotate "$out/$case.cg" 2>/dev/null | awk '/PROGRAM TOTALS/ && !n { gsub(",", "", $1); print $1; n = 1 }')
  awk -v c="$case" -v r="$reps" -v t="$total" -v i="$items" -v u="$unit" \
    'BEGIN { printf "%-12s %6d %16.0f %10d %10.1f/%s\n", c, r, t / r, i, t / r / i, u }'
done
rm -rf "$out"
