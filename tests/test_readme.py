"""The README's API tour runs as written (on a tiny `humr synth` dataset) and says what it
claims about densities."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def _tour() -> str:
    text = README.read_text()
    section = text[text.index("## API tour"):]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


@pytest.mark.timeout(300)
def test_readme_api_tour_runs(small_synth, tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "synthetic").symlink_to(small_synth, target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    torch.manual_seed(0)
    exec(compile(_tour(), str(README), "exec"), scope)  # noqa: S102 (our own README)
    out, batch = scope["out"], scope["batch"]
    B = batch["img"].shape[0]
    assert out["rotmat"].shape == (B, 100, 24, 3, 3) and out["keypoints2d"].shape == (B, 100, 17, 2)
    assert scope["meshes"].shape == (B, 5, 6890, 3)
    torch.testing.assert_close(scope["logp_6d"], out["log_prob"], atol=1e-3, rtol=1e-4)
    # the matrices' 6D points are other points than the samples: other densities
    assert (scope["logp_rot"][:, 1:] - out["log_prob"][:, 1:]).abs().min() > 1.0
    total, parts = scope["total"], scope["parts"]
    assert set(parts) == {"nll", "mmd", "mask"} and torch.isfinite(total)


def test_readme_explains_rotation_matrix_densities():
    text = README.read_text()
    assert "`log_prob` of rotation matrices" in text and "differs from the sample's" in text
