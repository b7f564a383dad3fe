# ncu of gluon=6 at batch 128, h_q 16: s_q 1 32k (1 stage, 16 splits), s_q 1 8k (2 stages, 8 splits), s_q 2 32k (h32, 2 st, 8 splits)
python -m pip install --no-deps --no-build-isolation -e . > /dev/null 2>&1
export PYTHONUNBUFFERED=1
S="--section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats --section SchedulerStats --section InstructionStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis"
( timeout 150 ncu --launch-skip 2 --launch-count 1 -k regex:split_kernel_fp8r $S python results/runs/2026-11-28-fp8-registers/ncu_fp8.py 128 32768 16 1 16 1 16 6
  timeout 120 ncu --launch-skip 2 --launch-count 1 -k regex:split_kernel_fp8r $S python results/runs/2026-11-28-fp8-registers/ncu_fp8.py 128 8192 16 1 8 2 16 6
  timeout 150 ncu --launch-skip 2 --launch-count 1 -k regex:split_kernel_fp8r $S python results/runs/2026-11-28-fp8-registers/ncu_fp8.py 128 32768 16 2 8 2 32 6 ) > $OUT/ncu.txt 2>&1; echo "ncu rc=$?"
grep -E "Duration|Registers Per|Achieved Occupancy|Theoretical Occupancy|Block Limit|Issue Slots Busy|No Eligible|Memory Throughput|DRAM Throughput" $OUT/ncu.txt
