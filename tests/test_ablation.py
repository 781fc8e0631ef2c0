"""Ablation presets and runner: every preset builds the model it names, the runner writes the
table, skips finished runs and resumes interrupted ones, the report's statistics."""
import itertools
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from humr import CONDITIONS, FLOWS, LOSSES
from humr.ablation import load_size, load_table, run_config, run_table, table_names
from humr.ablation.presets import presets_dir
from humr.ablation.report import judge_effects, summarize, to_markdown
from humr.ablation.runner import RunResult
from humr.cli import main
from humr.config import Config

PAPER_ROWS = {"table3": ["prohmr", "bbox", "pose2d", "realnvp", "mmd", "mask"],
              "s2": ["none", "kp2d_all_1e-3", "kp2d_all_5e-3", "kp2d_all_1e-2", "kp2d_vis_1e-3",
                     "kp2d_vis_5e-3", "kp2d_vis_1e-2", "diffpose", "mmd"]}


def _tiny_size_yaml(tiny_overrides) -> str:
    """A size preset with the engine tests' tiny network (the tiny overrides as a nested dict)."""
    keys = [t.split("=")[0] for t in tiny_overrides if not t.startswith("losses")]
    full = Config.load(None, overrides=[t for t in tiny_overrides if not t.startswith("losses")]).to_dict()
    nested: dict = {}
    for key in keys:
        *parents, name = key.split(".")
        src, dst = full, nested
        for part in parents:
            src, dst = src[part], dst.setdefault(part, {})
        dst[name] = src[name]
    return json.dumps({"label": "tiny", "data": {"n_train": 16, "n_test": 4, "seed": 0},
                       "config": nested})


@pytest.fixture
def tiny_presets(tmp_path, tiny_overrides):
    """Presets folder: the real table3 rows 'prohmr' and 'mask' (its effects judged against
    'prohmr', the row it has) plus a tiny size."""
    root = tmp_path / "presets"
    (root / "sizes").mkdir(parents=True)
    (root / "sizes" / "tiny.yaml").write_text(_tiny_size_yaml(tiny_overrides))
    (root / "t").mkdir()
    shutil.copy(presets_dir() / "table3" / "1_prohmr.yaml", root / "t" / "1_prohmr.yaml")
    mask = (presets_dir() / "table3" / "6_mask.yaml").read_text()
    (root / "t" / "6_mask.yaml").write_text(mask.replace("against: mmd", "against: prohmr"))
    return root


def test_tables_have_the_paper_rows_in_order():
    assert table_names() == ["s2", "table3"]
    for table, names in PAPER_ROWS.items():
        assert [r.name for r in load_table(table)] == names
    labels = [r.label for r in load_table("table3")]
    assert labels[0].startswith("ProHMR") and "mask" in labels[-1]


def _names(value):
    """Entry names of a preset's component set (a list or a mapping)."""
    return list(value)


@pytest.mark.parametrize("table", sorted(PAPER_ROWS))
def test_each_preset_builds_the_model_it_names(table):
    from humr.model import build_model

    size = load_size("cpu")
    for row in load_table(table):
        cfg = run_config(size, row, "unused", seed=0,
                         overrides=["model.flow.num_blocks=1", "model.flow.hidden_features=16",
                                    "model.head.hidden=16"])
        model = build_model(cfg)
        assert isinstance(model.flow, FLOWS.get(row.config["model"]["flow"]))
        names = row.config["model"]["conditions"]
        assert list(model.conditions) == names
        for name in names:
            assert isinstance(model.conditions[name], CONDITIONS.get(name))
        # the size's backbone survives the row's list of conditioners
        assert type(model.conditions["image"].backbone).__name__ == "SmallCNN"
        assert list(model.objective.losses) == _names(row.config["losses"])
        for name in model.objective.losses:
            assert isinstance(model.objective.losses[name], LOSSES.get(name))
        losses = row.config["losses"]
        for name, entry in (losses.items() if isinstance(losses, dict) else ()):
            if "weight" in entry:
                assert model.objective.weights[name] == pytest.approx(entry["weight"])


def test_rows_differ_by_one_step_as_in_the_paper():
    """Table 3 adds one component per row; S2 rows only change the supervision."""
    rows = load_table("table3")
    changes = []
    for a, b in itertools.pairwise(rows):
        ca, cb = a.config, b.config
        changes.append((ca["model"] != cb["model"], ca["losses"] != cb["losses"]))
    assert changes == [(True, False)] * 3 + [(False, True)] * 2
    assert [set(_names(b.config["losses"])) - set(_names(a.config["losses"]))
            for a, b in itertools.pairwise(rows[3:])] == [{"mmd"}, {"mask"}]
    for row in load_table("s2"):
        assert "mask" not in _names(row.config["losses"])
        assert row.config["model"]["flow"] == "realnvp"


def test_sizes_and_paper_numbers():
    cpu, paper = load_size("cpu"), load_size("paper")
    assert paper.config["model"] == {"conditions": {"image": {"backbone": {"name": "hrnet_w48"}}},
                                     "flow": {"num_blocks": 8, "hidden_features": 1024}}
    assert paper.config["train"]["batch_size"] == 64 and paper.config["train"]["lr"] == 1e-4
    assert cpu.config["model"]["conditions"]["image"]["backbone"]["name"] == "small_cnn"
    full = load_table("table3")[-1]
    assert full.paper["3dpw/mpjpe_min"] == 46.2 and full.paper["perc_in"] == 91.4


def test_run_config_merges_defaults_size_row_and_overrides_in_order():
    size, row = load_size("cpu"), load_table("table3")[0]
    cfg = run_config(size, row, "/data", seed=5, overrides=["train.lr=3e-4"])
    # the row switches realnvp -> nice; the size's block count carries over
    assert (cfg.model.flow.name, cfg.model.flow.num_blocks, cfg.train.seed, cfg.data.root,
            cfg.train.lr) == ("nice", 4, 5, "/data", 3e-4)
    assert cfg.train.batch_size == 32 and list(cfg.losses) == ["nll", "kp2d_mode", "betas", "orth"]
    s2 = run_config(size, load_table("s2")[1], "/data", seed=0)
    assert s2.losses["kp2d_all"].weight == 1e-3 and s2.losses["nll"].weight == 0.1


def test_malformed_presets_name_file_and_key(tmp_path):
    (tmp_path / "t").mkdir()
    bad = tmp_path / "t" / "1_bad.yaml"
    bad.write_text("label: x\nconfig: {model: {flw: nice}}\n")
    with pytest.raises(ValueError, match=r"1_bad\.yaml.*model\.flw"):
        load_table("t", tmp_path)
    bad.write_text("label: x\n")
    with pytest.raises(ValueError, match=r"1_bad\.yaml: missing keys \['config'\]"):
        load_table("t", tmp_path)
    with pytest.raises(KeyError, match="known tables: t"):
        load_table("nope", tmp_path)
    (tmp_path / "sizes").mkdir()
    with pytest.raises(KeyError, match="unknown ablation size 'huge'"):
        load_size("huge", tmp_path)


def _result(row, seed, **metrics):
    return RunResult(row, seed, metrics, 10, 1.0, 1.0, Path("unused"))


def test_summary_mean_and_sample_std_against_numpy():
    values = [3.0, 5.0, 10.0]
    results = {"a": [_result("a", s, x=v, y=math.nan) for s, v in enumerate(values)],
               "b": [_result("b", 0, x=7.0)]}
    s = summarize(results)
    assert s["a"]["mean"]["x"] == pytest.approx(np.mean(values))
    assert s["a"]["std"]["x"] == pytest.approx(np.std(values, ddof=1))
    low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert s["a"]["ci"]["x"] == pytest.approx((high - low) / 2)
    assert math.isnan(s["a"]["mean"]["y"]) and s["a"]["n"]["y"] == 0
    assert s["b"]["mean"]["x"] == 7.0 and math.isnan(s["b"]["std"]["x"])


def test_markdown_cells_show_mean_interval_and_paper():
    rows = load_table("table3")[:1]
    results = {"prohmr": [_result("prohmr", 0, **{"3dpw/mpjpe_min": 10.0}),
                          _result("prohmr", 1, **{"3dpw/mpjpe_min": 12.0})]}
    text = to_markdown("table3", rows, summarize(results), {"prohmr": 2}, "title")
    line = next(x for x in text.splitlines() if x.startswith("| ProHMR"))
    assert "| 2 | 11.0 ± 12.7 [55] |" in line          # t(0.975, 1) = 12.706, sem = 1
    assert "n/a [34.7]" in line


def test_oracle_row_fills_the_columns_the_oracle_has():
    rows = load_table("table3")[:1]
    results = {"prohmr": [_result("prohmr", 0, **{"emdb/mpjpe_min": 30.0, "3dpw/pve_min": 9.0})]}
    oracle = {"num_examples": 64.0, "num_samples": 100.0, "emdb/mpjpe_min": 11.04,
              "emdb/mpjpe_mean": 25.0, "3dpw/mpjpe_min": float("nan"), "energy_occluded": 8.66,
              "energy_occluded_se": 2.21, "perc_in": 91.0, "spread_invisible": 40.0,
              "emdb/mpjpe_min_mean_shape": 45.21}
    text = to_markdown("table3", rows, summarize(results), {"prohmr": 1}, "title", oracle)
    tables = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
              if line.startswith("| ")]
    header = [t for t in tables if t[0] == "row"]
    oracle_rows = [t for t in tables if t[0] == "oracle"]
    assert len(oracle_rows) == 2                            # one under each table
    cells = {h: v for head, row in zip(header, oracle_rows) for h, v in zip(head, row)}
    assert cells["MPJPE-24 ↓"] == "11.0" and cells["MPJPE-24 mode ↓"] == "25.0"
    assert cells["MPJPE-14 ↓"] == cells["PVE ↓"] == cells["2DKP mode ↓"] == ""   # no value
    assert cells["E-dist occl ↓"] == "8.7 ± 2.2" and cells["PercIn ↑"] == "91.0"
    assert cells["spread invis"] == "40.0" and "100 draws per image" in text
    # the mean-shape row: only under the accuracy table, only its best-of-N column
    shape_rows = [t for t in tables if t[0] == "oracle, mean shape"]
    assert len(shape_rows) == 1
    shape_cells = dict(zip(header[0], shape_rows[0]))
    assert shape_cells["MPJPE-24 ↓"] == "45.2" and shape_cells["MPJPE-24 mode ↓"] == ""
    assert "oracle" not in to_markdown("table3", rows, summarize(results), {"prohmr": 1}, "title")


def test_runner_writes_table_skips_finished_and_resumes(tiny_data, tiny_presets, tmp_path):
    out = tmp_path / "out"
    kw = {"size": "tiny", "data": tiny_data, "steps": 2, "num_samples": 4,
          "presets": tiny_presets, "progress": False, "train_kwargs": {"devices": 1}}
    results = run_table("t", out, rows=["prohmr"], **kw)
    assert list(results) == ["prohmr"]
    first = out / "t" / "prohmr" / "seed_0" / "result.json"
    data = json.loads(first.read_text())
    assert data["steps"] == 2 and math.isfinite(data["metrics"]["emdb/mpjpe_min"])
    table = (out / "t" / "table.md").read_text()
    assert "ProHMR" in table and "[55]" in table and "| 1 |" in table
    assert (out / "t" / "table.png").stat().st_size > 10_000
    stamp = first.stat().st_mtime_ns

    # an interrupted run of the second row: trained 2 steps, killed before its evaluation
    mask_dir = out / "t" / "mask" / "seed_0"
    from humr.ablation.runner import run_one
    run_one(load_table("t", tiny_presets)[1], load_size("tiny", tiny_presets), 0, tiny_data,
            mask_dir, steps=2, num_samples=4, progress=False, train_kwargs={"devices": 1})
    (mask_dir / "result.json").unlink()

    lines = []
    results = run_table("t", out, **{**kw, "steps": 4}, log=lines.append)
    assert first.stat().st_mtime_ns == stamp                  # finished run not redone
    assert "prohmr seed 0: finished earlier" in lines[0]
    assert json.loads((mask_dir / "result.json").read_text())["steps"] == 4
    assert sorted(p.name for p in mask_dir.glob("version_*")) == ["version_0"]   # resumed
    assert len(list((mask_dir / "version_0" / "csv").glob("session_*"))) == 2
    summary = json.loads((out / "t" / "table.json").read_text())
    assert [r["name"] for r in summary["rows"]] == ["prohmr", "mask"]
    # one seed per row: every effect is judged, none decided
    assert len(summary["effects"]) == 4
    assert {e["verdict"] for e in summary["effects"]} == {"inconclusive"}
    assert "**inconclusive**" in (out / "t" / "table.md").read_text()
    # the oracle row: the test split's true-posterior draws with the rows' N
    from humr.body import BodyModel
    from humr.data.oracle import dataset_oracle

    expected = dataset_oracle(BodyModel("procedural"), tiny_data, "test", 4)
    assert summary["oracle"]["num_samples"] == 4
    assert summary["oracle"]["emdb/mpjpe_min"] == pytest.approx(expected["emdb/mpjpe_min"])
    oracle_line = next(x for x in (out / "t" / "table.md").read_text().splitlines()
                       if x.startswith("| oracle"))
    assert f"{expected['emdb/mpjpe_min']:.1f}" in oracle_line


def test_ablate_command_prints_the_table(tiny_data, tiny_presets, tmp_path, capsys):
    args = ["ablate", "t", "--rows", "prohmr", "--size", "tiny", "--data", str(tiny_data),
            "--steps", "1", "--num-samples", "3", "--presets", str(tiny_presets),
            "--out", str(tmp_path), "--no-progress", "--devices", "1"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| ProHMR" in printed and "table.md" in printed
    assert main(args[:3] + ["nope"] + args[4:]) == 2
    assert "humr ablate: error: unknown rows" in capsys.readouterr().err


def test_table_data_is_generated_with_the_size_data_synth(tmp_path, body_dir):
    """The size's data.synth (and the overrides) generate the table's dataset; a folder of other
    generator parameters and a row changing data.synth are refused."""
    from humr.ablation.presets import Size, size_config
    from humr.ablation.runner import ensure_data
    from humr.data.format import read_meta

    synth = {"crop_res": 32, "posterior_samples": 2, "test_posterior_samples": 2,
             "candidates": 16, "max_rounds": 1, "body_model": str(body_dir)}
    size = Size("s", "tiny", {"n_train": 1, "n_test": 1, "seed": 3},
                {"data": {"synth": synth}})
    root = ensure_data(tmp_path / "d", size, progress=False)
    meta = read_meta(root)
    assert meta["seed"] == 3 and {k: meta["generator"][k] for k in synth} == synth
    assert ensure_data(root, size, progress=False) == root             # same parameters: reused
    with pytest.raises(ValueError, match=r"meta\.json.*crop_res=32 \(wanted 48\)"):
        ensure_data(root, size, progress=False, config=size_config(size, ["data.synth.crop_res=48"]))
    # a row may not change the shared generator
    (tmp_path / "p" / "sizes").mkdir(parents=True)
    (tmp_path / "p" / "sizes" / "s.yaml").write_text(json.dumps(
        {"label": "tiny", "data": size.data, "config": size.config}))
    (tmp_path / "p" / "t").mkdir()
    (tmp_path / "p" / "t" / "1_r.yaml").write_text("label: r\nconfig: {data: {synth: {crop_res: 40}}}\n")
    with pytest.raises(ValueError, match=r"1_r\.yaml: a row may not change data\.synth"):
        run_table("t", tmp_path / "out", size="s", data=root, presets=tmp_path / "p",
                  progress=False)


def test_effects_are_read_from_the_rows_and_checked(tmp_path):
    rows = {r.name: r for r in load_table("table3")}
    mask = {e.metric: e for e in rows["mask"].effects}
    assert mask["perc_in"].expect == "higher" and mask["perc_in"].base == "mmd"
    assert mask["3dpw/mpjpe_min"].expect == "no_worse" and mask["3dpw/mpjpe_min"].margin == 2.0
    assert all(e.base in rows for r in rows.values() for e in r.effects)
    assert sum(len(r.effects) for r in load_table("s2")) >= 6
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "1_a.yaml").write_text("label: a\nconfig: {}\n")
    row_b = tmp_path / "t" / "2_b.yaml"
    row_b.write_text("label: b\nconfig: {}\neffects:\n  - {claim: c, against: zz, "
                     "metric: m, expect: lower}\n")
    with pytest.raises(ValueError, match=r"2_b\.yaml.*against row 'zz'"):
        load_table("t", tmp_path)
    row_b.write_text("label: b\nconfig: {}\neffects:\n  - {claim: c, against: a, metric: m, "
                     "expect: smaller}\n")
    with pytest.raises(ValueError, match=r"2_b\.yaml.*expect"):
        load_table("t", tmp_path)
    row_b.write_text("label: b\nconfig: {}\neffects:\n  - {claim: c, against: a}\n")
    with pytest.raises(ValueError, match=r"2_b\.yaml.*needs claim"):
        load_table("t", tmp_path)


def test_effect_verdicts_pair_seeds_and_reach_the_markdown():
    rows = [r for r in load_table("table3") if r.name in ("realnvp", "mmd")]
    key = "3dpw/mpjpe_min"
    results = {   # large seed-to-seed noise, consistent improvement; seed 3 only in one row
        "realnvp": [_result("realnvp", s, **{key: v, "emdb/mpjpe_min": v})
                    for s, v in enumerate([100.0, 140.0, 120.0, 90.0])],
        "mmd": [_result("mmd", s, **{key: v, "emdb/mpjpe_min": v + d})
                for s, (v, d) in enumerate(zip([95.0, 134.0, 114.5], [10.0, -12.0, 0.0]))],
    }
    effects = {e["metric"]: e for e in judge_effects(rows, results)}
    acc = effects[key]
    assert acc["seeds"] == [0, 1, 2] and acc["n"] == 3
    assert acc["diff"] == pytest.approx(np.mean([-5.0, -6.0, -5.5]))
    assert acc["verdict"] == "reproduced" and acc["high"] < 0
    assert effects["emdb/mpjpe_min"]["verdict"] == "inconclusive"   # +5, -18, -5.5
    text = to_markdown("table3", rows, summarize(results), {"realnvp": 4, "mmd": 3}, "t",
                       effects=list(effects.values()))
    line = next(x for x in text.splitlines() if x.startswith("| L_MMD gives"))
    assert "+ RealNVP -> + L_MMD" in line and "**reproduced**" in line and "| 3 |" in line
