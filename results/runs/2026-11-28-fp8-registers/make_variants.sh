#!/usr/bin/env bash
# Rebuild the A/B variants that ab_fp8r.py loads (.devscripts/variants/fp8r_{D2,A,C,A2,G,E}.py) from the kernel of
# commit 9d66240 and this folder's diffs. Run from the repo root.
set -euo pipefail
R=results/runs/2026-11-28-fp8-registers
out=.devscripts/variants
mkdir -p "$out"
base=$(mktemp)
git show 9d66240:kernels/mla_gluon_fp8r.py > "$base"
cp "$base" "$out/fp8r_G.py"  # G: that kernel itself
for v in D2 A C A2; do  # variants.diff: variant -> kernel, so apply each section in reverse
  awk -v v="$v" '/^### variant /{on = ($3 == v":")} on && !/^###/' "$R/variants.diff" > "$out/$v.diff"
  cp "$base" "$out/fp8r_$v.py"
  patch -s -R "$out/fp8r_$v.py" "$out/$v.diff"
  rm "$out/$v.diff"
done
sed '1d' "$R/variant-E.diff" > "$out/E.diff"  # kernel -> variant E
cp "$base" "$out/fp8r_E.py"
patch -s "$out/fp8r_E.py" "$out/E.diff"
rm "$out/E.diff" "$base"
# loaded from outside the package: the kernel's relative import made absolute
sed -i 's/^from \.mla_gluon_fp8 import/from mlatune.kernels.mla_gluon_fp8 import/' "$out"/fp8r_*.py
