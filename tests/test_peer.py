"""FlashMLA as a peer (mlatune.peer) and the same-input comparison (mlatune.smallbatch): the CPU-side parts."""
from __future__ import annotations

from pathlib import Path

import pytest

from mlatune.peer import SOURCES, build
from mlatune.smallbatch import best_configs

ROOT = Path(__file__).resolve().parent.parent


def test_build_names_what_the_checkout_lacks(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a FlashMLA checkout") as e:
        build(tmp_path, None, tmp_path / "fm.so")
    assert SOURCES[0] in str(e.value)
    for s in SOURCES:  # sources present, CUTLASS missing: the error says which headers and how to get them
        (tmp_path / s).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / s).write_text("")
    with pytest.raises(FileNotFoundError, match="CUTLASS"):
        build(tmp_path, None, tmp_path / "fm.so")


def test_wrapper_is_ours_and_exports_the_entry_points():
    text = (ROOT / "mlatune" / "peer_flashmla.cu").read_text()
    for name in ("mlatune_fm_sched_meta_size", "mlatune_fm_get_meta", "mlatune_fm_decode", "mlatune_fm_error_string"):
        assert f"{name}(" in text


def test_best_configs_reads_the_installed_kernels_rows():
    best = best_configs(ROOT / "results" / "h200.db", "deepseek-v3", 16, 4096)
    assert len(best) == 60  # 5 batches x 2 seqlens x 6 (h_q, s_q)
    assert (best.batch <= 16).all() and (best.seqlen >= 4096).all() and (best.status == "ok").all()
    with pytest.raises(SystemExit, match="no verified bf16"):
        best_configs(ROOT / "results" / "h200.db", "no-such-sweep", 16, 4096)
