#!/usr/bin/env bash
# Rebuild the A/B variants (.devscripts/variants/fp8r_{H,V,K,B,A2,A64,P,T,PT}.py) that
# results/runs/2026-11-28-fp8-registers/ab_fp8r.py loads: H is the gluon=6 kernel of commit ec4c3af, the others are
# it plus a section of variants.diff. Run from the repo root of a git checkout; carry .devscripts to the GPU.
set -euo pipefail
R=results/runs/2026-11-28-fp8-prefetch
out=.devscripts/variants
mkdir -p "$out"
git show ec4c3af:kernels/mla_gluon_fp8r.py | sed 's/^from \.mla_gluon_fp8 import/from mlatune.kernels.mla_gluon_fp8 import/' > "$out/fp8r_H.py"
for v in V K B A2 A64 P T PT; do
  awk -v v="$v" '/^### variant /{on = ($3 == v":")} on && !/^###/' "$R/variants.diff" > "$out/$v.diff"
  cp "$out/fp8r_H.py" "$out/fp8r_$v.py"
  patch -s "$out/fp8r_$v.py" "$out/$v.diff"
  rm "$out/$v.diff"
done
