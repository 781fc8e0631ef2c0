"""benchmarks/bench_eval.py: the arithmetic floor against products of known size, and the
script end to end at a tiny size."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_eval


def test_arithmetic_floor_counts_the_products_of_each_side(capsys):
    a, b = torch.randn(64, 32), torch.randn(32, 16)
    flop = 2 * 64 * 32 * 16                                 # one a @ b
    floor = bench_eval.arithmetic_floor(
        {"one product": lambda: a @ b, "two and a small one": lambda: (a @ b, a @ b, a[:2] @ b),
         "elementwise only": lambda: a * 2 + 1}, rate=1e-3)  # GFLOP/s
    assert floor["one product"] == pytest.approx(flop / 1e6)
    assert floor["two and a small one"] == pytest.approx((2 + 2 / 64) * flop / 1e6)
    assert floor["elementwise only"] == 0
    assert "one product" in capsys.readouterr().out


def test_script_prints_ratios_and_the_floor(capsys):
    assert bench_eval.main(["--batch", "2", "--samples", "3", "--blocks", "1", "--hidden", "16",
                            "--context", "8", "--repeats", "1", "--threads", "1"]) == 0
    printed = capsys.readouterr().out
    assert "speed-up reference / humr" in printed
    assert "the largest speed-up humr's arithmetic allows" in printed
    floors = [line.split() for line in printed.splitlines()
              if line.startswith("  ") and "GFLOP" in line]
    names = [" ".join(f[:-4]) for f in floors]
    assert names == ["reference", "humr flow", "humr body"]
    gflop = {n: float(f[-4]) for n, f in zip(names, floors)}
    assert gflop["humr flow"] > 0 and gflop["humr body"] > 0
