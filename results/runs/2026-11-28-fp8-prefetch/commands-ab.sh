# The A/B runs of this folder (variants: make_variants.sh in a git checkout, then carry .devscripts), each one device
# call with ab_fp8r.py on four h_q 16 shapes, stages 1 and 2 (the ACC2 run also 3), splits 8 and 16:
#   ab_alu.jsonl       H,V,K,B     e4m3 -> fp16 on the integer pipe (7 instructions per four codes) for V^T, K, both
#   ab_acc2.jsonl      H,A2,A64    S^T on two accumulators, 128- or 64-dim groups
#   ab_prefetch.jsonl  H,P,T,PT    next group's / chunk's codes read before converting (P), block table read a tile ahead (T)
#   ab_softmax.jsonl   H,R,M,RM    (make_variants.sh softmax; stages 2 only, pieces ordered) per-warp row sums at 32 rows
#                                  too (R), the row maxima through shared memory behind one barrier (M), both (RM)
python -m pip install --no-deps --no-build-isolation -e . > /dev/null 2>&1
export PYTHONUNBUFFERED=1
timeout 500 python results/runs/2026-11-28-fp8-registers/ab_fp8r.py H,P,T,PT 1,2 > $OUT/ab_prefetch.jsonl
# the stall profiles of the cd3e694 kernel (ncu_stalls_8k.txt, ncu_stalls_32rows.txt, ncu_source_sass_*.csv.gz):
#   the same two ncu commands with the arguments 128 8192 16 1 4 2 16 6 and 128 32768 16 2 8 2 32 6
# the wgmma microbenchmark (mb_wgmma.txt): cd results/runs/2026-11-28-fp8-prefetch && python mb_wgmma.py
# the stall profile of the ec4c3af kernel (ncu_stalls.txt, ncu_source_sass.csv.gz), batch 128, 32k, 16 splits, 2 stages:
#   P=results/runs/2026-11-28-fp8-registers/ncu_fp8.py
#   ncu --launch-skip 2 --launch-count 1 -k regex:split_kernel_fp8r --metrics regex:smsp__average_warps_issue_stalled_.*_per_issue_active\\.ratio python $P 128 32768 16 1 16 2 16 6
#   ncu --launch-skip 2 --launch-count 1 -k regex:split_kernel_fp8r --section SourceCounters --section WarpStateStats --page source --print-source sass --csv python $P 128 32768 16 1 16 2 16 6
