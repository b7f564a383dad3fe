"""Fixed-cost probe: the seesaw kernel and FlashMLA at fixed lengths, one wave (batch 132) and two (264), h_q 64 s_q 1."""
import csv, os, sys
from mlatune.kernels import Config
from mlatune.peer import FlashMLA
from mlatune.smallbatch import measure
from mlatune.workload import Workload

fm = FlashMLA(".devscripts/flashmla_sm90.so")
cfg = Config(block_n=64, block_h=64, num_splits=1, num_warps=8, num_stages=2, gluon=3)
rows = []
for h in (64, 128):
    for batch in (66, 132, 264):
        if h == 128 and batch == 264:
            continue
        for L in (128, 256, 512, 1024, 2048, 4096):
            w = Workload(batch=batch, seqlen=L, h_q=h, s_q=1, dist="fixed")
            r = measure(fm, w, cfg)
            rows.append(r)
            print(f"h{h} b{batch} L{L}: ours {r.get('ours_us', float('nan')):.1f} flashmla {r.get('flashmla_us', float('nan')):.1f} {r['status']}", flush=True)
with open(os.path.join(os.environ["OUT"], "calib.csv"), "w", newline="") as f:
    wr = csv.DictWriter(f, fieldnames=list(dict.fromkeys(k for r in rows for k in r)))
    wr.writeheader(); wr.writerows(rows)
