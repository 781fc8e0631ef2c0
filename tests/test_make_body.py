"""``humr make-body``: files written, preview image, arguments."""
from __future__ import annotations

import hashlib

import numpy as np
import pytest

from humr.cli import main


def test_make_body_command(tmp_path, capsys, body_dir):
    out = tmp_path / "body"
    assert main(["make-body", str(out), "--seed", "0", "--preview"]) == 0
    assert "SMPL_NEUTRAL.pkl" in capsys.readouterr().out
    sha = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()
    assert sha(out / "smpl" / "SMPL_NEUTRAL.pkl") == sha(body_dir / "smpl" / "SMPL_NEUTRAL.pkl")
    import matplotlib.image

    img = matplotlib.image.imread(out / "preview.png")[..., :3]
    assert img.shape[0] > 300 and img.shape[1] > 500
    skin = (img[..., 0] > img[..., 2] + 0.1)   # shaded skin colour, background is white
    assert 0.03 < skin.mean() < 0.5
    # six panels: body pixels in each of the 3 columns and 2 rows
    h, w = skin.shape
    for r in range(2):
        for c in range(3):
            assert skin[r * h // 2:(r + 1) * h // 2, c * w // 3:(c + 1) * w // 3].mean() > 0.01


def test_make_body_seed_and_help(tmp_path, capsys):
    assert main(["make-body", str(tmp_path), "--seed", "5"]) == 0
    assert not (tmp_path / "preview.png").exists()
    assert np.load(tmp_path / "J_regressor_h36m.npy").shape == (17, 6890)
    with pytest.raises(SystemExit):
        main(["make-body", "--help"])
    assert "OUT_DIR" in capsys.readouterr().out
