"""Tuned tables: export from measurements, determinism, noise tie-break, lookup, validation, check-table CLI."""
import json

import click
import pandas as pd
import pytest
from click.testing import CliRunner

from mlatune import table as tbl
from mlatune.cli_tables import register
from mlatune.kernels import Config, default_config, source_hash

BATCHES = (1, 4, 16)
SEQLENS = (256, 1024, 4096)
A = Config(block_n=64, block_h=64, num_splits=0, num_warps=8, num_stages=2)
B = Config(block_n=32, block_h=64, num_splits=4, num_warps=8, num_stages=3)
C = Config(block_n=128, block_h=32, num_splits=0, num_warps=4, num_stages=2)
DEF = default_config(128, 1)


def row(b, l, cfg, t, spread=0.01, status="ok", **kw):
    r = dict(device="NVIDIA H200", kernel_hash=source_hash(), torch="2.5.1", triton="3.2.0", sweep="unit",
             batch=b, seqlen=l, h_q=128, s_q=1, kv_format="bf16", page_size=64, dist="fixed", causal=True,
             **cfg.to_dict(), status=status, reason="", time_us=t if status == "ok" else None,
             p20_us=t * (1 - spread) if status == "ok" else None, p80_us=t * (1 + spread) if status == "ok" else None,
             gbps=1000.0 * b * l / t if status == "ok" else None, tflops=None, err_rel=0.0, interpreted=False,
             created_at="2025-01-02T03:04:05+00:00")
    r.update(kw)
    return r


def grid_df(times):
    """times(cfg, b, l) -> us or None (not measured); every config over the 3x3 grid, plus the default."""
    rows = [row(b, l, cfg, t) for b in BATCHES for l in SEQLENS for cfg in (A, B, C, DEF)
            if (t := times(cfg, b, l)) is not None]
    return pd.DataFrame(rows)


def base_times(cfg, b, l):
    # A wins at short seqlens, B at long ones, C is always slower, the default slowest
    base = 10.0 + b * l / 1000
    return base * {A: 1.0 if l < 4096 else 1.2, B: 1.2 if l < 4096 else 1.0, C: 1.3, DEF: 1.5}[cfg]


def only(tables):
    assert len(tables) == 1
    return tables[0]


def test_export_load_round_trip(tmp_path):
    t = only(tbl.build_tables(grid_df(base_times)))
    (path,) = tbl.write_tables([t], tmp_path)
    assert path == tmp_path / "NVIDIA_H200" / "mla_decode_bf16_p64_h128_s1.json"
    loaded = tbl.load(path)
    for b in BATCHES:
        for l in SEQLENS:
            assert loaded.config(b, l) == (A if l < 4096 else B)
            e = loaded.entries[(b, l)]
            assert e["time_us"] == pytest.approx(base_times(A, b, l) if l < 4096 else base_times(B, b, l), abs=1e-3)
            assert e["speedup"] == pytest.approx(1.5, abs=1e-3)
    d = loaded.data
    assert d["schema_version"] == tbl.SCHEMA_VERSION and d["kernel_hash"] == source_hash()
    assert (d["device"], d["device_name"], d["torch"], d["triton"]) == ("NVIDIA_H200", "NVIDIA H200", "2.5.1", "3.2.0")
    assert (d["sweep"], d["sweep_date"]) == ("unit", "2025-01-02T03:04:05+00:00")
    assert d["batches"] == list(BATCHES) and d["seqlens"] == list(SEQLENS)


def test_knob_columns_missing_from_the_data_take_config_defaults():
    df = grid_df(base_times)
    same = [n for n in tbl.KNOBS if df[n].nunique() == 1 and df[n].iloc[0] == getattr(Config(), n)]
    full = tbl.build_tables(df)
    assert tbl.build_tables(df.drop(columns=same)) == full


def test_speedup_null_when_default_not_measured():
    t = only(tbl.build_tables(grid_df(lambda c, b, l: None if c == DEF else base_times(c, b, l))))
    assert all(e["speedup"] is None and e["default_time_us"] is None for e in t["entries"])


def test_output_is_deterministic(tmp_path):
    df = grid_df(base_times)
    a = tbl.write_tables(tbl.build_tables(df), tmp_path / "a")[0].read_text()
    b = tbl.write_tables(tbl.build_tables(df.sample(frac=1, random_state=3)), tmp_path / "b")[0].read_text()
    assert a == b
    data = json.loads(a)
    assert a == json.dumps(data, indent=1, sort_keys=True) + "\n"
    assert [(e["batch"], e["seqlen"]) for e in data["entries"]] == sorted((b, l) for b in BATCHES for l in SEQLENS)


def test_only_verified_configs_are_chosen():
    df = grid_df(base_times)
    # C becomes the fastest everywhere, but computes a wrong answer at one shape: never chosen
    df.loc[df["block_n"] == 128, "time_us"] /= 10
    df.loc[df["block_n"] == 128, ["p20_us", "p80_us"]] /= 10
    bad = row(16, 4096, C, 1.0, status="incorrect")
    t = only(tbl.build_tables(pd.concat([df, pd.DataFrame([bad])])))
    assert all(e["config"] != C.to_dict() for e in t["entries"])
    # C crashed at one bucket only: excluded there, chosen elsewhere
    crash = row(1, 256, C, 1.0, status="crashed")
    t = only(tbl.build_tables(pd.concat([df, pd.DataFrame([crash])])))
    picks = {(e["batch"], e["seqlen"]): Config.from_dict(e["config"]) for e in t["entries"]}
    assert picks[(1, 256)] == A and picks[(4, 256)] == C
    # interpreter timings and other kernel hashes are not eligible
    assert tbl.build_tables(df.assign(interpreted=True)) == []
    assert tbl.build_tables(df.assign(interpreted=True), allow_interpreted=True)[0]["interpreted"] is True
    assert tbl.build_tables(df.assign(kernel_hash="0123abcd0123")) == []
    assert tbl.build_tables(df, sweep="other") == []


def test_two_kernel_hashes_for_one_file_is_an_error():
    df = grid_df(base_times)
    both = pd.concat([df, df.assign(kernel_hash="0123abcd0123")])
    with pytest.raises(ValueError, match="kernel hashes"):
        tbl.build_tables(both, kernel_hash=None)


def tie_times(margin):
    """A beats B at the centre bucket (4, 1024) by `margin`; B is best at every other bucket."""
    def times(cfg, b, l):
        base = 10.0 + b * l / 1000
        if (b, l) == (4, 1024):
            return base * {A: 1.0, B: 1.0 + margin, C: 1.5, DEF: 1.6}[cfg]
        return base * {A: 1.3, B: 1.0, C: 1.5, DEF: 1.6}[cfg]
    return times


def test_noise_tie_break_prefers_config_good_at_neighbours():
    # A wins by 0.5%, inside the +-2% p20/p80 spread: B, best at all four neighbours, is chosen
    df = grid_df(tie_times(0.005))
    df[["p20_us", "p80_us"]] = pd.DataFrame({"p20_us": df["time_us"] * 0.98, "p80_us": df["time_us"] * 1.02})
    t = tbl.Table(only(tbl.build_tables(df)))
    assert t.config(4, 1024) == B
    # A wins by 10%, well outside the noise: A is kept
    df = grid_df(tie_times(0.10))
    t = tbl.Table(only(tbl.build_tables(df)))
    assert t.config(4, 1024) == A


def table_with(rows, **top):
    d = {"schema_version": tbl.SCHEMA_VERSION, "kernel": "mla_decode", "kernel_hash": source_hash(),
         "device": "NVIDIA_H200", "device_name": "NVIDIA H200", "torch": "2.5.1", "triton": "3.2.0",
         "sweep": "unit", "sweep_date": "2025-01-02", "interpreted": False, "kv_format": "bf16",
         "page_size": 64, "h_q": 128, "s_q": 1,
         "entries": [{"batch": b, "seqlen": l, "config": cfg.to_dict(), "time_us": 1.0} for b, l, cfg in rows]}
    d.update(top)
    return d


def test_nearest_bucket_on_log_scale_and_clamped():
    cfgs = {}
    for i, b in enumerate(BATCHES):
        for j, l in enumerate(SEQLENS):
            cfgs[(b, l)] = Config(block_n=16 << j, block_h=16 << i)
    t = tbl.Table(table_with([(b, l, c) for (b, l), c in cfgs.items()]))
    cases = {
        (4, 1024): (4, 1024),  # exact
        (3, 600): (4, 1024),  # log2: 3 is nearer 4 than 1; 600 nearer 1024 than 256
        (2, 512): (1, 256),  # exact geometric midpoints go to the smaller bucket
        (7, 2000): (4, 1024),  # 7 < sqrt(4*16)=8 -> 4; 2000 < sqrt(1024*4096)=2048 -> 1024
        (9, 2100): (16, 4096),
        (0, 0): (1, 256),  # below the grid: clamp
        (1000, 10**6): (16, 4096),  # above the grid: clamp
        (1, 10**6): (1, 4096),
    }
    for q, want in cases.items():
        assert t.bucket(*q) == want, q
        assert t.config(*q) == cfgs[want]


def test_nearest_bucket_in_a_sparse_grid():
    t = tbl.Table(table_with([(1, 256, A), (16, 256, B), (1, 4096, C)]))
    assert t.bucket(16, 4096) == (1, 4096)  # the missing corner: two neighbours tie, the smaller batch wins
    assert t.bucket(16, 8192) == (1, 4096)  # log2 distance 17 against 25 for (16, 256)
    assert t.bucket(12, 300) == (16, 256)
    assert t.bucket(1, 3000) == (1, 4096)


def write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


GOOD = [(1, 256, A), (4, 256, B)]
BAD_TABLES = {
    "not_json": ("{oops", "not valid JSON"),
    "not_object": ([1, 2], "JSON object"),
    "schema": (table_with(GOOD, schema_version=99), "schema_version is 99"),
    "no_schema": ({"entries": []}, "schema_version is None"),
    "missing_key": ({k: v for k, v in table_with(GOOD).items() if k != "kernel_hash"}, "missing key 'kernel_hash'"),
    "wrong_type": (table_with(GOOD, h_q="128"), "'h_q' must be int"),
    "hash": (table_with(GOOD, kernel_hash="0123abcd0123"), "does not match the installed kernels"),
    "bad_config": (table_with([(1, 256, Config(block_n=48))]), "block_n=48"),
    "unknown_knob": (table_with(GOOD, entries=[{"batch": 1, "seqlen": 256, "config": {"tile": 3}, "time_us": 1.0}]), "unknown config keys"),
    "dup": (table_with([(1, 256, A), (1, 256, B)]), "duplicate bucket"),
    "empty": (table_with([]), "entries is empty"),
    "entry_type": (table_with(GOOD, entries=[{"batch": 1, "seqlen": 256, "config": A.to_dict(), "time_us": "fast"}]), "'time_us' must be float"),
    "kv_format": (table_with(GOOD, kv_format="int4"), "kv_format"),
}


@pytest.mark.parametrize("name", sorted(BAD_TABLES))
def test_bad_tables_are_rejected_with_reasons(tmp_path, name):
    data, why = BAD_TABLES[name]
    path = write(tmp_path / "NVIDIA_H200" / "mla_decode_bf16_p64_h128_s1.json", data)
    with pytest.raises(tbl.TableError) as exc:
        tbl.load(path)
    assert any(why in p for p in exc.value.problems), exc.value.problems
    assert str(path) in str(exc.value)


def test_file_and_folder_names_must_match_content(tmp_path):
    good = table_with(GOOD)
    assert tbl.load(write(tmp_path / "NVIDIA_H200" / "mla_decode_bf16_p64_h128_s1.json", good)).configs
    with pytest.raises(tbl.TableError, match="file name"):
        tbl.load(write(tmp_path / "NVIDIA_H200" / "mla_decode_bf16_p64_h64_s1.json", good))
    with pytest.raises(tbl.TableError, match="folder"):
        tbl.load(write(tmp_path / "NVIDIA_H100" / "mla_decode_bf16_p64_h128_s1.json", good))
    assert tbl.validate(table_with(GOOD, kernel_hash="0123abcd0123"), kernel_hash=None) == []


def cli():
    @click.group()
    def main():
        pass

    register(main)
    return main


def test_check_table_exit_codes(tmp_path):
    good = write(tmp_path / "NVIDIA_H200" / "mla_decode_bf16_p64_h128_s1.json", table_with(GOOD))
    stale = write(tmp_path / "NVIDIA_H200" / "mla_decode_bf16_p64_h64_s1.json", table_with(GOOD, h_q=64, kernel_hash="0123abcd0123"))
    broken = write(tmp_path / "NVIDIA_H200" / "mla_decode_bf16_p64_h32_s1.json", "{oops")
    r = CliRunner().invoke(cli(), ["check-table", str(good)])
    assert r.exit_code == 0 and r.output.startswith("ok"), r.output
    r = CliRunner().invoke(cli(), ["check-table", str(good), str(broken)])
    assert r.exit_code == 1 and f"FAIL {broken}" in r.output and "not valid JSON" in r.output
    r = CliRunner().invoke(cli(), ["check-table", str(stale)])
    assert r.exit_code == 1 and "kernel_hash" in r.output
    assert CliRunner().invoke(cli(), ["check-table", "--ignore-hash", str(stale)]).exit_code == 0
    assert CliRunner().invoke(cli(), ["check-table"]).exit_code == 2  # usage error: no files


def test_export_and_report_commands(tmp_path, monkeypatch):
    import mlatune.store

    df = grid_df(base_times)
    monkeypatch.setattr(mlatune.store, "results", lambda db, **kw: df)
    out = tmp_path / "configs"
    r = CliRunner().invoke(cli(), ["export", "--db", "x.db", "--out", str(out)])
    assert r.exit_code == 0, r.output
    (path,) = out.glob("*/*.json")
    assert CliRunner().invoke(cli(), ["check-table", str(path)]).exit_code == 0
    r = CliRunner().invoke(cli(), ["export", "--db", "x.db", "--out", str(out), "--sweep", "nope"])
    assert r.exit_code == 1 and "no verified measurements" in r.output and "unit" in r.output
    r = CliRunner().invoke(cli(), ["report", "--db", "x.db", "--out", str(tmp_path / "plots")])
    assert r.exit_code == 0, r.output
    pngs = sorted(p.name for p in (tmp_path / "plots").glob("*.png"))
    assert pngs == ["best_NVIDIA_H200_bf16_p64_s1.png", "speedup_NVIDIA_H200_bf16_p64_s1.png"]
    assert all((tmp_path / "plots" / p).read_bytes()[:4] == b"\x89PNG" for p in pngs)


def test_normalize_device():
    assert tbl.normalize_device("NVIDIA H200") == "NVIDIA_H200"
    assert tbl.normalize_device("NVIDIA H100 80GB HBM3") == "NVIDIA_H100_80GB_HBM3"
    assert tbl.normalize_device(tbl.normalize_device("NVIDIA H200")) == "NVIDIA_H200"
    assert tbl.normalize_device("") == "unknown"
