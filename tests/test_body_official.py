"""Official (chumpy) SMPL files without chumpy: restricted unpickler, layouts, genders, utils files.

A throwaway stand-in package ``chumpy`` (class path ``chumpy.ch.Ch``, chumpy's pickled state:
the attribute dict with the array under ``x``) is written into tmp_path and used only by the
process that writes the pickle; the loading process has no ``chumpy`` at all.
"""
from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from _payload import Payload
from _subprocess import python_env

from humr.body.model import find_utils_file, resolve_model_file
from humr.body.safe_pickle import UnsafePickleError, load_body_pickle

REPO = Path(__file__).resolve().parents[1]

# chumpy's Ch pickles its __dict__ minus the weak caches (chumpy/ch.py, __getstate__)
STAND_IN = '''
import numpy as np

class Ch(object):
    def __init__(self, x):
        self.__dict__.update(x=np.asarray(x, np.float64), _dirty_vars=set(), _itr=None,
                             _depends_on_deps={}, _make_dense=False, _make_sparse=False,
                             _parents={}, _cache={"r": None})

    def __getstate__(self):
        state = dict(self.__dict__)
        del state["_parents"], state["_cache"]
        return state
'''

WRITER = '''
import pickle, sys
import numpy as np, scipy.sparse as sp
from chumpy.ch import Ch
with open(sys.argv[1], "rb") as f:
    data = pickle.load(f)
data = dict(data, shapedirs=Ch(data["shapedirs"]), J_regressor=sp.csc_matrix(data["J_regressor"]),
            bs_style="lbs", bs_type="lrotmin", vert_sym_idxs=np.arange(4))
blob = pickle.dumps(data, protocol=2)
# the official files were written by Python 2 / NumPy 1 / SciPy < 1.8: their class paths
for new, old in ((b"scipy.sparse._csc\\n", b"scipy.sparse.csc\\n"),
                 (b"numpy._core.multiarray\\n", b"numpy.core.multiarray\\n")):
    blob = blob.replace(new, old)
open(sys.argv[2], "wb").write(blob)
'''


def _dense(a):
    return a.toarray() if hasattr(a, "toarray") else a


def _run(code: str, *args, pythonpath=(REPO,)) -> str:
    env = python_env(*pythonpath)
    res = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                         check=False, capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.fixture(scope="module")
def chumpy_pkl(body_dir, tmp_path_factory):
    """The procedural body as an official-style chumpy pickle (protocol 2, old class paths)."""
    tmp = tmp_path_factory.mktemp("chumpy")
    (tmp / "stand_in" / "chumpy").mkdir(parents=True)
    (tmp / "stand_in" / "chumpy" / "__init__.py").write_text("")
    (tmp / "stand_in" / "chumpy" / "ch.py").write_text(STAND_IN)
    out = tmp / "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl"
    _run(WRITER, body_dir / "smpl" / "SMPL_NEUTRAL.pkl", out,
         pythonpath=(tmp / "stand_in", REPO))
    blob = out.read_bytes()
    assert b"chumpy.ch\nCh" in blob and b"scipy.sparse.csc\ncsc_matrix" in blob
    assert b"numpy.core.multiarray\n_reconstruct" in blob and b"__builtin__\nset" in blob
    return out


def test_chumpy_pickle_loads_without_chumpy_with_equal_vertices(chumpy_pkl, body_dir, tmp_path):
    """Every accepted layout, loaded in a process without chumpy, gives the plain file's vertices."""
    smplx_layout = tmp_path / "smplx_layout"
    official = tmp_path / "download"
    models = official / "SMPL_python_v.1.1.0" / "smpl" / "models"
    (smplx_layout / "smpl").mkdir(parents=True)
    models.mkdir(parents=True)
    blob = chumpy_pkl.read_bytes()
    (smplx_layout / "smpl" / "SMPL_NEUTRAL.pkl").write_bytes(blob)
    (smplx_layout / "smpl" / "SMPL_FEMALE.pkl").write_bytes(blob)
    for g in ("neutral", "m", "f"):
        (models / f"basicmodel_{g}_lbs_10_207_0_v1.1.0.pkl").write_bytes(blob)
    cases = [(str(chumpy_pkl), "neutral"), (str(smplx_layout), "neutral"),
             (str(smplx_layout), "female"), (str(official), "male"), (str(official), "female"),
             (str(official / "SMPL_python_v.1.1.0"), "neutral")]
    code = '''
    import json, sys
    import numpy as np, torch
    from humr.body import BodyModel
    torch.manual_seed(0)
    a = torch.randn(2, 24, 3, 3, dtype=torch.float64) * 0.3
    rot = torch.linalg.matrix_exp(a - a.transpose(-1, -2))
    betas = torch.randn(2, 10, dtype=torch.float64)
    ref = BodyModel(sys.argv[1], dtype=torch.float64)
    want = ref(rot, betas, return_vertices=True)["vertices"]
    res = []
    for path, gender in json.loads(sys.argv[2]):
        body = BodyModel(path, gender=gender, dtype=torch.float64)
        got = body(rot, betas, return_vertices=True)["vertices"]
        res.append([body.model_file.name, bool(torch.equal(got, want))])
    assert not any(m == "chumpy" or m.startswith("chumpy.") for m in sys.modules)
    print(json.dumps(res))
    '''
    out = json.loads(_run(code, body_dir / "smpl" / "SMPL_NEUTRAL.pkl", json.dumps(cases)).splitlines()[-1])
    names = [n for n, _ in out]
    assert names == ["basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl", "SMPL_NEUTRAL.pkl",
                     "SMPL_FEMALE.pkl", "basicmodel_m_lbs_10_207_0_v1.1.0.pkl",
                     "basicmodel_f_lbs_10_207_0_v1.1.0.pkl", "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl"]
    assert all(equal for _, equal in out), out


def test_loaded_arrays_equal_the_plain_file(chumpy_pkl, body_dir):
    with open(body_dir / "smpl" / "SMPL_NEUTRAL.pkl", "rb") as f:
        plain = pickle.load(f)
    data = load_body_pickle(chumpy_pkl)
    assert type(data["shapedirs"]) is np.ndarray and data["shapedirs"].dtype == np.float64
    np.testing.assert_array_equal(data["shapedirs"], plain["shapedirs"])
    assert data["J_regressor"].format == "csc"
    np.testing.assert_array_equal(data["J_regressor"].toarray(), _dense(plain["J_regressor"]))
    np.testing.assert_array_equal(data["v_template"], plain["v_template"])
    assert data["bs_style"] == "lbs"


def test_payload_is_refused_without_executing(tmp_path):
    marker = tmp_path / "marker"

    bad = tmp_path / "SMPL_NEUTRAL.pkl"
    bad.write_bytes(pickle.dumps({"v_template": Payload(marker)}, protocol=2))
    with pytest.raises(UnsafePickleError, match=r"refusing to load (posix|os|nt)\.system") as err:
        load_body_pickle(bad)
    assert str(bad) in str(err.value)
    from humr.body import BodyModel

    with pytest.raises(ValueError, match="refusing to load"):
        BodyModel(tmp_path)
    assert not marker.exists()


def test_convert_command_writes_chumpy_free_copy(chumpy_pkl, body_dir, tmp_path, capsys):
    from humr.cli import main

    for suffix in (".pkl", ".npz"):
        dst = tmp_path / "out" / f"SMPL_NEUTRAL{suffix}"
        assert main(["body", "convert", str(chumpy_pkl), str(dst)]) == 0
        assert str(dst) in capsys.readouterr().out
        assert b"chumpy" not in dst.read_bytes()
        if suffix == ".pkl":
            with open(dst, "rb") as f:
                data = pickle.load(f)   # plain pickle: what smplx reads
        else:
            with np.load(dst, allow_pickle=False) as z:
                data = {k: z[k] for k in z.files}
        with open(body_dir / "smpl" / "SMPL_NEUTRAL.pkl", "rb") as f:
            plain = pickle.load(f)
        for key in ("shapedirs", "J_regressor", "v_template", "posedirs", "weights"):
            np.testing.assert_array_equal(data[key], _dense(plain[key]))
    # atomic writes leave no temp files behind
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["SMPL_NEUTRAL.npz", "SMPL_NEUTRAL.pkl"]


def test_smplx_npz_and_pkl_without_pickles(tiny_smplx):
    """SMPL-X .npz with an object entry (like the release's joint2num) and a plain .pkl."""
    import torch

    from humr.body import BodyModel

    folder, data = tiny_smplx
    rot = torch.eye(3, dtype=torch.float64).expand(1, 22, 3, 3)
    betas = torch.zeros(1, 10, dtype=torch.float64)
    root = folder.parents[2]
    male = BodyModel(root, model_type="smplx", gender="male", dtype=torch.float64)
    female = BodyModel(root, model_type="smplx", gender="female", dtype=torch.float64)
    assert male.model_file.name == "SMPLX_MALE.npz" and female.model_file.name == "SMPLX_FEMALE.pkl"
    a = male(rot, betas, return_vertices=True)["vertices"]
    b = female(rot, betas, return_vertices=True)["vertices"]
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    torch.testing.assert_close(a[0], torch.from_numpy(data["v_template"]), rtol=0, atol=1e-6)


def test_gender_and_missing_file_errors(tmp_path, body_dir):
    with pytest.raises(ValueError, match="gender must be one of neutral, male, female"):
        resolve_model_file(body_dir, gender="other")
    with pytest.raises(FileNotFoundError, match="no male SMPL body model") as err:
        resolve_model_file(body_dir, gender="male")
    assert "basicmodel_m_lbs_10_207_0_v1.1.0.pkl" in str(err.value)


def test_utils_files_found_by_official_name_or_named_in_error(tmp_path):
    models = tmp_path / "data" / "body_models" / "SMPL_python_v.1.1.0" / "smpl" / "models"
    models.mkdir(parents=True)
    model = models / "basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl"
    model.write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"J_regressor_h36m\.npy .*utils\.zip"):
        find_utils_file("J_regressor_h36m.npy", model)
    assert find_utils_file("smplx2smpl.pkl", model, required=False) is None
    utils = tmp_path / "data" / "utils"
    utils.mkdir()
    np.save(utils / "J_regressor_h36m.npy", np.zeros((17, 6890)))
    assert find_utils_file("J_regressor_h36m.npy", model) == utils / "J_regressor_h36m.npy"
    elsewhere = tmp_path / "my_utils"
    elsewhere.mkdir()
    np.save(elsewhere / "J_regressor_extra.npy", np.zeros((9, 6890)))
    assert find_utils_file("J_regressor_extra.npy", model, elsewhere) == elsewhere / "J_regressor_extra.npy"


def test_body_without_regressor_names_the_file_when_a_protocol_needs_it(tmp_path, body_dir):
    import shutil

    from humr.body import BodyModel

    (tmp_path / "smpl").mkdir()
    shutil.copy(body_dir / "smpl" / "SMPL_NEUTRAL.pkl", tmp_path / "smpl")
    body = BodyModel(tmp_path)
    assert not body.has_h36m
    with pytest.raises(FileNotFoundError, match=r"3dpw protocol needs .*J_regressor_h36m\.npy.*utils\.zip"):
        body.require_h36m("3dpw")
    utils = tmp_path / "u"
    utils.mkdir()
    shutil.copy(body_dir / "J_regressor_h36m.npy", utils)
    body = BodyModel(tmp_path, utils_dir=utils)
    assert body.has_h36m
    body.require_h36m()


def test_smplx_finds_the_release_mapping_and_regressor_by_name(tiny_smplx, tmp_path):
    """smplx2smpl.pkl (a pickled {'matrix': (6890, V)}) and J_regressor_h36m.npy in data/utils."""
    import torch

    from humr.body import BodyModel

    folder, _ = tiny_smplx
    utils = tmp_path / "elsewhere" / "u"     # not beside the model: only found through utils_dir
    utils.mkdir(parents=True)
    rng = np.random.default_rng(2)
    mapping = np.zeros((6890, 60))
    mapping[np.arange(6890), rng.integers(0, 60, 6890)] = 1.0
    (utils / "smplx2smpl.pkl").write_bytes(pickle.dumps({"matrix": mapping}, protocol=2))
    reg = rng.random((17, 6890)) / 6890
    np.save(utils / "J_regressor_h36m.npy", reg)
    body = BodyModel(folder, model_type="smplx", dtype=torch.float64, utils_dir=utils)
    assert body.has_h36m
    rot = torch.eye(3, dtype=torch.float64).expand(1, 22, 3, 3)
    out = body(rot, torch.zeros(1, 10, dtype=torch.float64), return_vertices=True)
    smpl_verts = mapping @ out["vertices"][0].numpy()
    np.testing.assert_allclose(out["vertices_smpl"][0].numpy(), smpl_verts, atol=1e-12)
    np.testing.assert_allclose(out["h36m17"][0].numpy(), reg @ smpl_verts, atol=1e-10)
    assert not BodyModel(folder, model_type="smplx").has_h36m     # nothing found: no mapping, no H36M
    (tmp_path / "utils").symlink_to(utils)                          # data/utils beside the downloads
    found = BodyModel(folder, model_type="smplx")
    assert found.has_h36m and hasattr(found, "smplx_to_smpl")
