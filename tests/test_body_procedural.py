"""The procedural SMPL-format body: format, topology, regressors, weights, symmetry, shapes."""
from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest
import scipy.sparse
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

# SMPL's kinematic tree, written out as the reference (smplx reads it from the file)
SMPL_TREE = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]
LR_SWAP = [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20, 23, 22]


@pytest.fixture(scope="module")
def data(body_dir):
    with open(body_dir / "smpl" / "SMPL_NEUTRAL.pkl", "rb") as f:
        return pickle.load(f, encoding="latin1")


@pytest.fixture(scope="module")
def smpl(body_dir):
    smplx = pytest.importorskip("smplx")
    import torch

    return smplx.create(str(body_dir), model_type="smpl", dtype=torch.float64)


def _edges(faces):
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    return e


def test_smplx_loads_counts_and_tree(smpl, data):
    assert smpl.get_num_verts() == 6890 and smpl.get_num_faces() == 13776
    assert smpl.parents.tolist() == SMPL_TREE
    assert smpl.shapedirs.shape == (6890, 3, 10) and smpl.posedirs.shape == (207, 6890 * 3)
    assert scipy.sparse.issparse(data["J_regressor"]) and data["J_regressor"].shape == (24, 6890)
    assert data["weights"].shape == (6890, 24) and data["kintree_table"].shape == (2, 24)
    assert not np.any(data["posedirs"])
    assert np.issubdtype(data["f"].dtype, np.integer)
    out = smpl()   # rest pose through smplx's own forward
    assert out.vertices.shape == (1, 6890, 3) and out.joints.shape == (1, 45, 3)


def test_mesh_is_one_closed_oriented_genus0_surface(data):
    f, v = data["f"], data["v_template"]
    assert f.min() == 0 and f.max() == 6889 and len(np.unique(f)) == 6890   # every vertex used
    directed = _edges(f)
    # each directed edge once and its reverse once: closed, manifold, consistently oriented
    keys = directed[:, 0] * 6890 + directed[:, 1]
    rev = directed[:, 1] * 6890 + directed[:, 0]
    assert len(np.unique(keys)) == len(keys)
    assert np.array_equal(np.sort(keys), np.sort(rev))
    n_edges = len(keys) // 2
    assert 6890 - n_edges + len(f) == 2   # Euler characteristic of a sphere
    adj = scipy.sparse.coo_matrix((np.ones(len(keys)), (directed[:, 0], directed[:, 1])), shape=(6890, 6890))
    assert connected_components(adj, directed=False)[0] == 1
    a, b, c = v[f[:, 0]], v[f[:, 1]], v[f[:, 2]]
    volume = np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6
    assert 0.04 < volume < 0.12   # outward normals; a 60-80 kg body is ~0.07 m^3


def test_regressor_rows_convex_and_reproduce_rest_joints(data):
    R = data["J_regressor"].toarray()
    assert (R >= 0).all() and np.allclose(R.sum(1), 1.0, atol=1e-12)
    J = R @ data["v_template"]
    assert np.allclose(J, data["J"], atol=1e-12)
    # anatomy of the rest skeleton (y up, left = +x), ~1.7 m tall
    v = data["v_template"]
    assert 1.6 < v[:, 1].max() - v[:, 1].min() < 1.85
    assert J[15, 1] > J[12, 1] > J[9, 1] > J[6, 1] > J[3, 1] > J[0, 1] > J[1, 1] > J[4, 1] > J[7, 1]
    assert J[1, 0] > 0 and J[16, 0] > J[13, 0] > 0 and J[22, 0] > J[20, 0] > J[18, 0] > J[16, 0]
    assert J[10, 2] > J[7, 2]   # toes in front of the ankle


def test_skinning_weights_convex_and_smooth(data):
    W, f, v = data["weights"], data["f"], data["v_template"]
    assert (W >= 0).all() and np.allclose(W.sum(1), 1.0, atol=1e-12)
    e = _edges(f)
    assert np.abs(W[e[:, 0]] - W[e[:, 1]]).sum(1).max() < 0.7   # no jump across any edge
    # blends across each limb joint: vertices shared by parent and child bone
    for parent, child in ((16, 18), (18, 20), (1, 4), (4, 7), (12, 15), (3, 6)):
        both = (W[:, parent] > 0.2) & (W[:, child] > 0.2)
        assert both.sum() >= 10, (parent, child)
    # every vertex mostly moves with a bone near it
    J = data["J"]
    main = W.argmax(1)
    children = {p: [c for c in range(24) if SMPL_TREE[c] == p] for p in range(24)}
    dist = []
    for i in range(0, 6890, 7):
        j = main[i]
        ends = [J[j]] + [J[c] for c in children[j]]
        dist.append(min(np.linalg.norm(v[i] - e) for e in ends))
    assert np.max(dist) < 0.25


def test_left_right_mirror_symmetry(data):
    v = data["v_template"]
    flip = np.array([-1.0, 1.0, 1.0])
    d, m = cKDTree(v).query(v * flip)
    assert d.max() < 1e-9
    assert np.allclose(data["weights"][m][:, LR_SWAP], data["weights"], atol=1e-9)
    S = data["shapedirs"]
    assert np.allclose(S[m] * flip[None, :, None], S, atol=1e-9)
    assert np.array_equal(data["vert_sym_idxs"], m)


def test_special_vertices_at_their_body_parts(data):
    from smplx.vertex_ids import vertex_ids

    ids = vertex_ids["smplh"]
    v, J = data["v_template"], data["J"]
    p = {k: v[i] for k, i in ids.items()}
    ymin = v[:, 1].min()
    assert p["nose"][1] > J[12, 1] and p["nose"][2] > J[15, 2] + 0.05 and abs(p["nose"][0]) < 1e-9
    assert p["leye"][1] > p["nose"][1] and p["leye"][0] > 0.01 and np.allclose(p["reye"], p["leye"] * [-1, 1, 1])
    assert p["lear"][0] > p["leye"][0] + 0.03 and p["lear"][2] < p["leye"][2] - 0.05
    assert np.allclose(p["rear"], p["lear"] * [-1, 1, 1])
    for side, s in (("L", 1), ("R", -1)):
        big, small, heel = p[side + "BigToe"], p[side + "SmallToe"], p[side + "Heel"]
        assert max(big[1], small[1], heel[1]) < ymin + 0.06    # at the bottom
        assert big[2] > heel[2] + 0.15 and small[2] > heel[2] + 0.1
        assert s * small[0] > s * big[0]                     # small toe lateral
        wrist = J[20 if s > 0 else 21]
        for tip in ("thumb", "index", "middle", "ring", "pinky"):
            assert s * p[side.lower() + tip][0] > s * wrist[0] + 0.05
        assert p[side.lower() + "thumb"][2] > p[side.lower() + "pinky"][2]
        assert p[side.lower() + "index"][2] > p[side.lower() + "middle"][2] > p[side.lower() + "ring"][2] \
            > p[side.lower() + "pinky"][2]


def _shaped(data, k, b):
    v = data["v_template"] + data["shapedirs"][..., k] * b
    return v, data["J_regressor"] @ v


@pytest.mark.parametrize("k", [0, 2, 4])
def test_height_directions_monotonic(data, k):
    heights = [np.ptp(_shaped(data, k, b)[0][:, 1]) for b in np.linspace(-3, 3, 7)]
    assert np.all(np.diff(heights) > 0.005)


def test_shape_directions_move_limbs_and_joints_consistently(data):
    length = lambda J, a, b: np.linalg.norm(J[a] - J[b])
    _, J0 = _shaped(data, 0, 0.0)
    _, Jleg = _shaped(data, 2, 2.0)
    assert length(Jleg, 1, 7) > length(J0, 1, 7) + 0.05 and np.allclose(Jleg[0], J0[0])
    _, Jarm = _shaped(data, 3, 2.0)
    assert length(Jarm, 16, 20) > length(J0, 16, 20) + 0.05
    # girth: the body gets wider at the waist, the skeleton does not move
    v0, _ = _shaped(data, 1, 0.0)
    v1, J1 = _shaped(data, 1, 2.0)
    waist = lambda v: np.ptp(v[np.abs(v[:, 1] - J0[3, 1]) < 0.02, 0])
    assert waist(v1) > waist(v0) + 0.03
    assert np.allclose(J1, J0, atol=1e-12)
    # every direction changes the body, none is a copy of another
    S = data["shapedirs"].reshape(-1, 10)
    assert np.linalg.matrix_rank(S) == 10


def test_h36m_regressor(body_dir, data):
    from humr.body.keypoints import H36M17_NAMES, H36M_TO_LSP14, LSP14_NAMES

    H = np.load(body_dir / "J_regressor_h36m.npy")
    assert H.shape == (17, 6890) and (H >= 0).all() and np.allclose(H.sum(1), 1.0)
    v, J = data["v_template"], data["J"]
    h = H @ v
    names = dict(zip(H36M17_NAMES, h))
    smpl = {"left_hip": 1, "right_hip": 2, "left_knee": 4, "right_knee": 5, "left_ankle": 7,
            "right_ankle": 8, "left_shoulder": 16, "right_shoulder": 17, "left_elbow": 18,
            "right_elbow": 19, "left_wrist": 20, "right_wrist": 21, "pelvis": 0}
    for n, j in smpl.items():
        assert np.allclose(names[n], J[j], atol=1e-9), n
    assert abs(names["head_top"][1] - v[:, 1].max()) < 1e-9
    assert J[0, 1] < names["spine"][1] < names["thorax"][1] < names["neck"][1] < names["head_top"][1]
    for lsp, hi in zip(LSP14_NAMES, H36M_TO_LSP14):
        assert lsp == H36M17_NAMES[hi] or (lsp, H36M17_NAMES[hi]) == ("neck", "thorax")


def test_byte_identical_regeneration(tmp_path, body_dir):
    from humr.body.procedural import make_body

    digest = lambda d: [hashlib.sha256((d / f).read_bytes()).hexdigest()
                        for f in ("smpl/SMPL_NEUTRAL.pkl", "J_regressor_h36m.npy")]
    again = make_body(tmp_path / "a", seed=0)
    assert digest(again) == digest(body_dir)
    other = make_body(tmp_path / "b", seed=1)
    assert digest(other)[0] != digest(body_dir)[0]


def test_default_body_dir_cached(tmp_path, monkeypatch):
    from humr.body.procedural import default_body_dir

    monkeypatch.setenv("HUMR_HOME", str(tmp_path))
    d = default_body_dir()
    assert d.parent == tmp_path and (d / "smpl" / "SMPL_NEUTRAL.pkl").is_file()
    stamp = (d / "smpl" / "SMPL_NEUTRAL.pkl").stat().st_mtime_ns
    assert default_body_dir() == d
    assert (d / "smpl" / "SMPL_NEUTRAL.pkl").stat().st_mtime_ns == stamp   # not regenerated
