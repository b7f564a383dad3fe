#!/usr/bin/env bash
# Rebuild the A/B variants that results/runs/2026-11-28-fp8-registers/ab_fp8r.py loads (.devscripts/variants/fp8r_*.py).
# `make_variants.sh` (ab_alu, ab_acc2, ab_prefetch): H is the gluon=6 kernel of commit ec4c3af, V K B A2 A64 P T PT are
# it plus a section of variants.diff. `make_variants.sh softmax` (ab_softmax): H R M RM from the kernel of commit
# cd3e694 and variants-softmax.diff. Run from the repo root of a git checkout; carry .devscripts to the GPU.
set -euo pipefail
R=results/runs/2026-11-28-fp8-prefetch
out=.devscripts/variants
mkdir -p "$out"
if [ "${1:-}" != softmax ]; then
git show ec4c3af:kernels/mla_gluon_fp8r.py | sed 's/^from \.mla_gluon_fp8 import/from mlatune.kernels.mla_gluon_fp8 import/' > "$out/fp8r_H.py"
for v in V K B A2 A64 P T PT; do
  awk -v v="$v" '/^### variant /{on = ($3 == v":")} on && !/^###/' "$R/variants.diff" > "$out/$v.diff"
  cp "$out/fp8r_H.py" "$out/fp8r_$v.py"
  patch -s "$out/fp8r_$v.py" "$out/$v.diff"
  rm "$out/$v.diff"
done
exit 0
fi
# ab_softmax.jsonl: H (the switches off), R (per-warp row sums at 32 rows too), M (row maxima through shared memory, one
# barrier), RM (both) from the kernel of commit cd3e694 and variants-softmax.diff (they overwrite fp8r_H.py)
git show cd3e694:kernels/mla_gluon_fp8r.py | sed 's/^from \.mla_gluon_fp8 import/from mlatune.kernels.mla_gluon_fp8 import/' > "$out/base2.py"
for v in H R M RM; do
  awk -v v="$v" '/^### variant /{on = ($3 == v":")} on && !/^###/' "$R/variants-softmax.diff" > "$out/$v.diff"
  cp "$out/base2.py" "$out/fp8r_$v.py"
  patch -s "$out/fp8r_$v.py" "$out/$v.diff"
  rm "$out/$v.diff"
done
rm "$out/base2.py"
