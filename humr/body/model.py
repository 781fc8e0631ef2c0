"""SMPL / SMPL-X body model on smplx, with a joints-only fast path for training.

:class:`BodyModel` takes rotation matrices and betas and returns joints, COCO-17 keypoints,
H36M-17 / LSP-14 joints (with an H36M regressor) and, only when asked, vertices.

Full path (``smplx.lbs.lbs``): v = sum_j w_vj A_j(theta, J(beta)) (T + S beta + P(theta)),
joints J(beta) = R (T + S beta) posed by forward kinematics.

Joints-only path: the rest joints J(beta) = R T + (R S) beta come from the regressor applied
to the template and shape directions once (R T and R S are precomputed, (J, 3) and
(J, 3, nb)); forward kinematics (``smplx.lbs.batch_rigid_transform``) gives the posed joints
and the transforms A_j; only the K vertices that keypoints need (COCO face vertices and the
support of the H36M regressor) are shaped, pose-corrected (their rows of posedirs) and
skinned. Same numbers as the full path, O(K) instead of O(V) work.
"""
from __future__ import annotations

import contextlib
import functools
import io
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from humr.body.keypoints import COCO17_FACE_VERTICES, COCO17_FROM_SMPL, H36M_TO_LSP14

__all__ = ["GENDERS", "NUM_BODY_JOINTS", "UTILS_FILES", "BodyModel", "find_utils_file", "load_model_data",
           "read_model_file", "resolve_model_file"]

NUM_BODY_JOINTS = {"smpl": 24, "smplx": 22}
GENDERS = ("neutral", "male", "female")
_SHORT = {"neutral": "neutral", "male": "m", "female": "f"}
_REQUIRED = ("v_template", "f", "J_regressor", "weights", "kintree_table", "shapedirs", "posedirs")
_HELP = ("Generate a procedural SMPL-format body with `humr make-body OUT_DIR` and pass "
         "model_path=OUT_DIR (or model_path='procedural'), or download the official model from "
         "https://smpl.is.tue.mpg.de (SMPL-X: https://smpl-x.is.tue.mpg.de).")
# auxiliary files of the official release's utils.zip (twehrbein/humr, train/core/config.py)
UTILS_FILES = {
    "J_regressor_h36m.npy": "H36M-17 joint regressor (17, 6890) of the 3DPW protocol",
    "J_regressor_extra.npy": "extra SMPL joint regressor (9, 6890)",
    "smpl_mean_params.npz": "SMPL mean pose / shape / camera",
    "smplx2smpl.pkl": "SMPL-X -> SMPL vertex mapping (6890, 10475), key 'matrix'",
}
_UTILS_SOURCE = ("the official release's utils.zip (twehrbein/humr README: extract it to data/utils "
                 "next to data/body_models, or pass its folder with --utils / utils_dir)")


def _file_names(model_type: str, gender: str) -> tuple[str, ...]:
    """Accepted file names, smplx layout first, then the official downloads' names."""
    g = gender.upper()
    if model_type == "smplx":
        return (f"SMPLX_{g}.npz", f"SMPLX_{g}.pkl")
    short = _SHORT[gender]
    official = [f"basicmodel_{short}_lbs_10_207_0_v1.1.0.pkl", f"basicmodel_{short}_lbs_10_207_0_v1.0.0.pkl"]
    if gender != "male":   # SMPL 1.0.0 spells these with a capital M
        official.append(f"basicModel_{short}_lbs_10_207_0_v1.0.0.pkl")
    return (f"SMPL_{g}.pkl", *official)


def _expected(model_type: str, gender: str = "neutral") -> str:
    names = " or ".join(_file_names(model_type, gender))
    return f"expected {names} with keys {', '.join(_REQUIRED)}"


def _check_gender(gender: str) -> str:
    if gender not in GENDERS:
        raise ValueError(f"gender must be one of {', '.join(GENDERS)}, got {gender!r}")
    return gender


def resolve_model_file(model_path: str | Path, model_type: str = "smpl", gender: str = "neutral") -> Path:
    """The model file for ``model_path``: the file itself, or inside a folder: smplx's layout
    (``<dir>/<model_type>/SMPL_NEUTRAL.pkl``, ``<dir>/SMPLX_FEMALE.npz``, ...) or an official
    download as extracted (``SMPL_python_v.1.1.0/smpl/models/basicmodel_neutral_lbs_10_207_0_v1.1.0.pkl``,
    ``models_smplx_v1_1/models/smplx/SMPLX_MALE.npz``: searched up to 4 levels deep).
    ``gender`` picks the gendered file. "procedural" is the generated body
    (:func:`humr.body.procedural.default_body_dir`). Raises FileNotFoundError naming the path,
    the expected file and where to get one."""
    if model_type not in NUM_BODY_JOINTS:
        raise ValueError(f"model_type must be one of {sorted(NUM_BODY_JOINTS)}, got {model_type!r}")
    _check_gender(gender)
    if str(model_path) == "procedural":
        if model_type != "smpl" or gender != "neutral":
            raise ValueError("model_path='procedural' is a neutral SMPL body; use model_type='smpl', "
                             "gender='neutral'")
        from humr.body.procedural import default_body_dir

        model_path = default_body_dir()
    path = Path(model_path).expanduser()
    if path.is_file():
        return path
    names = _file_names(model_type, gender)
    candidates = [path / sub / name for sub in (model_type, "") for name in names]
    for c in candidates:
        if c.is_file():
            return c
    if path.is_dir():   # official downloads as extracted: a few folders deep
        wanted = {n.lower(): i for i, n in enumerate(names)}
        found = sorted((wanted[p.name.lower()], len(p.parts), str(p)) for depth in range(1, 5)
                       for p in path.glob("/".join(["*"] * depth)) if p.name.lower() in wanted)
        if found:
            return Path(found[0][2])
    raise FileNotFoundError(
        f"no {gender} {model_type.upper()} body model at {path}: {_expected(model_type, gender)} "
        f"(looked for {', '.join(str(c) for c in candidates)} and the official download layout "
        f"up to 4 folders deep). {_HELP}")


def find_utils_file(name: str, near: str | Path | None = None, utils_dir: str | Path | None = None,
                    required: bool = True) -> Path | None:
    """An auxiliary file of the release's utils.zip (:data:`UTILS_FILES`) by its official name:
    in ``utils_dir``, else next to the model file ``near`` or in ``utils`` / ``data/utils`` beside
    one of its 4 nearest ancestors. Missing: FileNotFoundError naming the file and its source
    (``required``), else None."""
    if name not in UTILS_FILES:
        raise ValueError(f"unknown utils file {name!r}; known: {', '.join(UTILS_FILES)}")
    looked = []
    if utils_dir is not None:
        looked.append(Path(utils_dir).expanduser() / name)
    if near is not None:
        near = Path(near).expanduser()
        start = near.parent if near.is_file() or near.suffix else near
        for a in [start, *list(start.parents)[:4]]:
            looked += [a / name, a / "utils" / name, a / "data" / "utils" / name]
    for p in looked:
        if p.is_file():
            return p
    if not required:
        return None
    raise FileNotFoundError(
        f"{name} ({UTILS_FILES[name]}) not found (looked in {', '.join(str(p.parent) for p in looked) or 'nowhere'}); "
        f"it comes from {_UTILS_SOURCE}")


def read_model_file(path: Path) -> dict:
    """Raw contents of a body-model file: .npz (``np.load`` without pickles; object entries such as
    SMPL-X's ``joint2num`` are skipped) or .pkl (chumpy or plain, through
    :func:`humr.body.safe_pickle.load_body_pickle`: chumpy arrays -> numpy, nothing executed)."""
    from humr.body.safe_pickle import load_body_pickle

    if path.suffix == ".npz":
        data = {}
        with np.load(path, allow_pickle=False) as z:
            for k in z.files:
                try:
                    data[k] = z[k]
                except ValueError:   # an object array (needs pickle): not a model array
                    continue
        return data
    return load_body_pickle(path)


def load_model_data(path: Path, model_type: str = "smpl") -> dict:
    """Read and validate a model file (pkl or npz, chumpy-free). Raises ValueError naming the path
    and what was expected when it cannot be read or lacks keys / has inconsistent shapes."""
    try:
        data = read_model_file(path)
    except Exception as err:  # any unpickling / zip error means a malformed or unsafe file
        raise ValueError(f"cannot read body model {path} ({type(err).__name__}: {err}); "
                         f"{_expected(model_type)}. {_HELP}") from err
    if not isinstance(data, dict):
        # a malformed file (not a wrong argument type): ValueError like the other file errors
        raise ValueError(f"body model {path} holds a {type(data).__name__}, not a dict; "  # noqa: TRY004
                         f"{_expected(model_type)}. {_HELP}")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ValueError(f"body model {path} lacks keys {', '.join(missing)}; "
                         f"{_expected(model_type)}. {_HELP}")
    V = np.shape(data["v_template"])[0]
    J = np.shape(data["kintree_table"])[1] if np.ndim(data["kintree_table"]) == 2 else -1
    shapes = {"v_template": (V, 3), "f": (None, 3), "J_regressor": (J, V), "weights": (V, J),
              "kintree_table": (2, J), "shapedirs": (V, 3, None), "posedirs": (V, 3, None)}
    for key, want in shapes.items():
        got = tuple(np.shape(data[key]))
        if len(got) != len(want) or any(w is not None and g != w for g, w in zip(got, want)):
            raise ValueError(f"body model {path}: {key} has shape {got}, expected "
                             f"{tuple('*' if w is None else w for w in want)}; "
                             f"{_expected(model_type)}. {_HELP}")
    for key in ("v_template", "J_regressor", "weights", "shapedirs", "posedirs"):
        values = data[key].data if hasattr(data[key], "tocoo") else data[key]   # sparse: stored values
        if not np.isfinite(np.asarray(values, dtype=np.float64)).all():
            raise ValueError(f"body model {path}: {key} contains NaN or infinite values; "
                             f"{_expected(model_type)}. {_HELP}")
    if J < NUM_BODY_JOINTS[model_type]:
        raise ValueError(f"body model {path} has {J} joints, a {model_type.upper()} model has at "
                         f"least {NUM_BODY_JOINTS[model_type]}. {_HELP}")
    return data


def _load_matrix(path: str | Path, what: str, shape_hint: str) -> np.ndarray:
    """A dense float64 matrix from .npy / .npz / .pkl (first array, or key 'matrix'); pickles go
    through the restricted reader of :mod:`humr.body.safe_pickle`."""
    from humr.body.safe_pickle import load_body_pickle

    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{what} file {path} does not exist; expected {shape_hint}")
    try:
        if path.suffix == ".npy":
            m = np.load(path, allow_pickle=False)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                m = z["matrix"] if "matrix" in z.files else z[z.files[0]]
        else:
            m = load_body_pickle(path)
            if isinstance(m, dict):
                m = m["matrix"] if "matrix" in m else next(iter(m.values()))
    except Exception as err:
        raise ValueError(f"cannot read {what} file {path} ({type(err).__name__}: {err}); "
                         f"expected {shape_hint}") from err
    if hasattr(m, "toarray"):
        m = m.toarray()
    return np.asarray(m, dtype=np.float64)


@functools.lru_cache(maxsize=16)
def _levels(parents: tuple[int, ...]) -> tuple[tuple[list[int], list[int]], ...]:
    """Joints grouped by depth in the tree (root excluded): ``((joints, their parents), ...)``."""
    depth = [0] * len(parents)
    for j in range(1, len(parents)):
        depth[j] = depth[parents[j]] + 1
    groups = [[j for j in range(1, len(parents)) if depth[j] == d]
              for d in range(1, max(depth, default=0) + 1)]
    return tuple((g, [parents[j] for j in g]) for g in groups)


def kinematic_chain(rot: Tensor, rest: Tensor, parents: list[int]) -> tuple[Tensor, Tensor]:
    """Forward kinematics: posed joints (N, J, 3) and the skinning transforms (N, J, 4, 4) with
    the rest pose removed, for local rotations ``rot`` (N, J, 3, 3) and rest joints ``rest``
    (N, J, 3) (metres), as ``smplx.lbs.batch_rigid_transform`` computes them.

    Hand-written because smplx's version indexes its ``parents`` tensor joint by joint, a host
    synchronisation per joint on a GPU; here ``parents`` is a Python list (-1 for the root), and
    the joints of one depth in the tree are composed with their parents in one batched product
    (9 products for SMPL's 23 child joints instead of 23).
    """
    rel = torch.cat([rest[:, :1], rest[:, 1:] - rest[:, parents[1:]]], dim=1)
    local = torch.cat([torch.nn.functional.pad(rot, (0, 0, 0, 1)),
                       torch.nn.functional.pad(rel[..., None], (0, 0, 0, 1), value=1.0)], dim=-1)
    chain = [local[:, 0]] + [None] * (len(parents) - 1)
    for joints, above in _levels(tuple(parents)):
        posed = torch.stack([chain[p] for p in above], dim=1) @ local[:, joints]
        for j, transform in zip(joints, posed.unbind(dim=1)):
            chain[j] = transform
    world = torch.stack(chain, dim=1)                                   # (N, J, 4, 4)
    rest_h = torch.nn.functional.pad(rest, (0, 1))[..., None]           # (N, J, 4, 1), w = 0
    return world[..., :3, 3], world - torch.nn.functional.pad(world @ rest_h, (3, 0))


#: Tiles of :meth:`BodyModel._skin`: a tile holds at most ``_CPU_VERTEX_BLOCK`` vertices off
#: CUDA (every vertex on CUDA, where kernel launches rather than memory traffic set the time)
#: and as many bodies as keep one entry of its skinning transforms (vertices x bodies) within
#: ``_SKIN_ENTRIES`` (cache-sized). A tile's blend-shape product reads only its vertices' rows
#: of the directions, once for all its bodies: 16 images x 100 SMPL meshes on 2 CPU threads
#: read the 18 MB of directions once instead of once per 152 bodies (about 10 % of the body
#: pass, benchmarks/README.md).
_SKIN_ENTRIES = 1 << 20
_CPU_VERTEX_BLOCK = 512
#: Device types on which a tile of :meth:`BodyModel._skin` keeps only the joints its skinning
#: weights use and the vertices its regressor reads (exact: what it leaves out is 0). Finding
#: them is a host read: free on the CPU, a synchronisation on an accelerator, where every tile
#: uses every joint and regressed vertex instead. Tiles of 512 vertices of the procedural body
#: use 2-10 of its 24 joints and 0-44 of its 417 regressed vertices (16 images x 100 meshes on
#: 2 threads: 12 % of the body pass).
SPARSE_TILE_DEVICES = ("cpu",)


def _vertices_per_tile(device: torch.device, count: int) -> int:
    """Vertices in a tile of :meth:`BodyModel._skin` for ``count`` vertices on ``device``."""
    return count if device.type == "cuda" else min(count, _CPU_VERTEX_BLOCK)


def _tile_operands(weights: Tensor, regressor: Tensor | None, sparse: bool) -> tuple:
    """What one tile of :meth:`BodyModel._skin` multiplies, from its skinning weights (k, J)
    and regressor columns (R, k): ``(weights, joints, regressor, rows)``. Dense: the inputs,
    ``joints`` and ``rows`` every joint and vertex (``slice(None)``). Sparse: the weights
    (k, J') of the J' joints the tile uses and their indices ``joints`` (J',), the regressor
    (R, k') of the k' vertices it reads and their indices ``rows`` (k',), or None where it
    reads none (exact: what is left out is 0)."""
    joints = rows = slice(None)
    if not sparse:
        return weights, joints, regressor, rows
    joints = weights.any(0).nonzero()[:, 0]
    if regressor is not None:
        rows = regressor.any(0).nonzero()[:, 0]
        regressor = regressor[:, rows] if len(rows) else None
    return weights[:, joints], joints, regressor, rows


class BodyModel(nn.Module):
    r"""SMPL (24 joints) or SMPL-X body (22 joints) on smplx, driven by rotation matrices.

    Args:
        model_path: "procedural" (the generated SMPL-format body, created on first use), a
            folder (smplx layout: ``<dir>/smpl/SMPL_NEUTRAL.pkl``, ``<dir>/smplx/SMPLX_NEUTRAL.npz``,
            or an official download as extracted, e.g. ``SMPL_python_v.1.1.0``) or a model file
            (.pkl, chumpy or not, read without chumpy; .npz). See :func:`resolve_model_file`.
        model_type: "smpl" or "smplx" (body joints only; hands, jaw and eyes at rest, flat hands).
        num_betas: number of shape coefficients nb.
        h36m_regressor: path of an H36M-17 joint regressor (17, V_smpl) (.npy); by default the
            release's ``J_regressor_h36m.npy`` found by :func:`find_utils_file` (in ``utils_dir``,
            next to the model, in ``utils`` / ``data/utils`` of its ancestors) when there is one
            (``humr make-body`` writes it); :meth:`require_h36m` raises when a protocol needs it.
        smplx_to_smpl: SMPL-X only: vertex mapping (npz / pkl / npy) holding a (6890, V_smplx)
            matrix (key "matrix", dense or scipy sparse) or a (6890,) index array; gives
            ``vertices_smpl`` and lets the H36M regressor of SMPL apply to SMPL-X meshes; by
            default the release's ``smplx2smpl.pkl`` when :func:`find_utils_file` finds it.
        dtype: dtype of the buffers (inputs of another dtype are computed in theirs).
        gender: "neutral", "male" or "female": picks the gendered file in a folder.
        utils_dir: folder of the release's utils.zip files (searched first).
        search_utils: look for the utils.zip files at all (False: only the paths given).

    Attributes:
        num_joints: J (24 SMPL, 22 SMPL-X). pose_dim: 6 J. faces: (F, 3) int64 numpy array.
        parents: (J,) long buffer (-1 for the root). num_betas: nb.
        validate_args: check ``rotmat`` / ``betas`` for NaN / inf on every call (a host
            synchronisation on a GPU; off by default, torchmetrics' convention).

    ``forward(rotmat (..., J, 3, 3), betas (..., nb), return_vertices=False, joints_only=True)``
    returns a dict (metres, body frame, no translation) with ``joints`` (..., J, 3),
    ``coco17`` (..., 17, 3), ``h36m17`` (..., 17, 3) and ``lsp14`` (..., 14, 3) when a
    regressor is present, ``vertices`` (..., V, 3) (and ``vertices_smpl`` with a mapping) only
    with ``return_vertices=True``. Leading dims of rotmat and betas broadcast; the buffers
    follow the input's dtype. ``joints_only=True`` without vertices skins only the keypoint
    vertices (equal to the full pass up to rounding); ``h36m=False`` leaves out ``h36m17`` and
    ``lsp14``, and then only the five COCO face vertices are skinned (training).

    Example:
        >>> import torch
        >>> body = BodyModel("procedural")
        >>> rot = torch.eye(3).expand(2, 5, 24, 3, 3)
        >>> out = body(rot, torch.zeros(2, 5, 10))
        >>> out["joints"].shape, out["coco17"].shape, out["lsp14"].shape
        (torch.Size([2, 5, 24, 3]), torch.Size([2, 5, 17, 3]), torch.Size([2, 5, 14, 3]))
        >>> bool((out["coco17"][..., 0, 1] > out["coco17"][..., 5, 1]).all())  # nose above shoulder
        True
    """

    def __init__(self, model_path: str | Path = "procedural", model_type: str = "smpl",
                 num_betas: int = 10, h36m_regressor: str | Path | None = None,
                 smplx_to_smpl: str | Path | None = None,
                 dtype: torch.dtype = torch.float32, gender: str = "neutral",
                 utils_dir: str | Path | None = None, search_utils: bool = True,
                 validate_args: bool = False) -> None:
        super().__init__()
        self.validate_args = validate_args
        import smplx
        from smplx.vertex_ids import vertex_ids

        path = resolve_model_file(model_path, model_type, gender)
        data = load_model_data(path, model_type)
        if num_betas > np.shape(data["shapedirs"])[2]:
            raise ValueError(f"num_betas = {num_betas} but {path} has only "
                             f"{np.shape(data['shapedirs'])[2]} shape directions")
        # smplx prints a warning for models with fewer than 300 shape directions (all SMPL files)
        with contextlib.redirect_stdout(io.StringIO()):
            if model_type == "smpl":
                layer = smplx.SMPLLayer(model_path=str(path), data_struct=smplx.utils.Struct(**data),
                                        num_betas=num_betas, dtype=dtype)
            else:
                # SMPLXLayer reads its file itself (with pickle): give it a chumpy-free copy
                from humr.body.safe_pickle import write_body_file

                with tempfile.TemporaryDirectory() as tmp:
                    copy = write_body_file(data, Path(tmp) / f"SMPLX_{gender.upper()}.npz")
                    layer = smplx.build_layer(str(copy), model_type="smplx", num_betas=num_betas,
                                              ext="npz", use_pca=False, dtype=dtype, gender=gender)
        self.gender = gender
        self.utils_dir = None if utils_dir is None else Path(utils_dir).expanduser()
        self.model_type = model_type
        self.model_file = path
        self.num_betas = num_betas
        self.num_joints = NUM_BODY_JOINTS[model_type]
        self.pose_dim = 6 * self.num_joints
        self.faces = np.asarray(layer.faces, dtype=np.int64)
        num_verts = layer.v_template.shape[0]
        J = self.num_joints
        f64 = lambda t: t.detach().to(torch.float64)
        # full-pass buffers (smplx's, betas-part of the shape space only)
        self.register_buffer("v_template", f64(layer.v_template))
        self.register_buffer("shapedirs", f64(layer.shapedirs[:, :, :num_betas]))
        self.register_buffer("posedirs", f64(layer.posedirs))
        self.register_buffer("J_regressor", f64(layer.J_regressor))
        self.register_buffer("lbs_weights", f64(layer.lbs_weights))
        self.register_buffer("all_parents", layer.parents.clone())
        self.register_buffer("parents", layer.parents[:J].clone())
        self._parent_list = layer.parents[:J].tolist()      # indexing without device reads
        face_ids = [vertex_ids["smplh" if model_type == "smpl" else "smplx"][n] for n in COCO17_FACE_VERTICES]

        mapping = None
        if smplx_to_smpl is None and model_type == "smplx" and search_utils:
            smplx_to_smpl = find_utils_file("smplx2smpl.pkl", path, self.utils_dir, required=False)
        if smplx_to_smpl is not None:
            if model_type != "smplx":
                raise ValueError("smplx_to_smpl is a SMPL-X -> SMPL vertex mapping; model_type must be 'smplx'")
            mapping = self._load_mapping(smplx_to_smpl, num_verts)
            self.register_buffer("smplx_to_smpl", mapping)
        if h36m_regressor is None and search_utils:
            h36m_regressor = find_utils_file("J_regressor_h36m.npy", path, self.utils_dir, required=False)
        h36m = self._load_h36m(h36m_regressor, num_verts if mapping is None else mapping.shape[0])
        if h36m is not None and mapping is not None:
            h36m = h36m @ mapping     # regress from the SMPL-X mesh directly
        if h36m is not None:
            self.register_buffer("h36m_regressor", h36m)
        self.has_h36m = h36m is not None

        # rest joints from precomputed regressor products; vertex sets skinned by _skin
        reg = self.J_regressor[:J]
        self.register_buffer("_j_template", reg @ self.v_template, persistent=False)
        self.register_buffer("_j_shapedirs", torch.einsum("jv,vcb->jcb", reg, self.shapedirs), persistent=False)
        n_pose = 9 * (J - 1)   # correctives of body joints; the other joints are at rest (R - I = 0)
        # shape and pose directions stacked (betas first), (nb + 9 (J - 1), V * 3)
        dirs = torch.cat([self.shapedirs.permute(2, 0, 1).reshape(num_betas, -1), self.posedirs[:n_pose]])
        weights = self._fold_weights(self.lbs_weights)
        support = torch.tensor(face_ids)
        if h36m is not None:
            support = torch.cat([support, (h36m != 0).any(0).nonzero()[:, 0]])
        sub, inverse = torch.unique(support, return_inverse=True)
        self.register_buffer("_sub_face", inverse[:len(face_ids)], persistent=False)
        self.register_buffer("_sub_idx", sub, persistent=False)
        for name, idx in (("all", None), ("keypoints", sub), ("face", torch.tensor(face_ids))):
            self._register_vertex_set(name, idx, dirs, weights)
        if h36m is not None:
            self.register_buffer("_sub_h36m", h36m[:, sub], persistent=False)
        self.to(dtype)

    # -- loading helpers -------------------------------------------------------------------
    def _fold_weights(self, weights: Tensor) -> Tensor:
        """(K, J_all) -> (K, J): weights of non-body joints (hands, jaw, eyes, at rest) moved to
        their nearest body ancestor, whose transform they share when their rotation is I."""
        J = self.num_joints
        out = weights[:, :J].clone()
        parents = self.all_parents.tolist()
        for j in range(J, weights.shape[1]):
            a = j
            while a >= J:
                a = parents[a]
            out[:, a] += weights[:, j]
        return out

    def _register_vertex_set(self, name: str, idx: Tensor | None, dirs: Tensor, weights: Tensor) -> None:
        """Buffers ``_{name}_template`` (K, 3), ``_{name}_dirs`` (nb + 9 (J - 1), K * 3) and
        ``_{name}_weights`` (K, J) of the vertices ``idx`` (None: all)."""
        template = self.v_template if idx is None else self.v_template[idx]
        if idx is not None:
            dirs = dirs.view(dirs.shape[0], -1, 3)[:, idx].reshape(dirs.shape[0], -1)
            weights = weights[idx]
        self.register_buffer(f"_{name}_template", template.clone(), persistent=False)
        self.register_buffer(f"_{name}_dirs", dirs.clone(), persistent=False)
        self.register_buffer(f"_{name}_weights", weights.clone(), persistent=False)

    @staticmethod
    def _load_mapping(path, num_verts: int) -> Tensor:
        hint = f"a (6890, {num_verts}) matrix (key 'matrix') or a (6890,) index array"
        m = _load_matrix(path, "SMPL-X -> SMPL mapping", hint)
        if m.ndim == 1 and m.shape[0] == 6890:
            idx = m.astype(np.int64)
            m = np.zeros((6890, num_verts))
            m[np.arange(6890), idx] = 1.0
        if m.shape != (6890, num_verts):
            raise ValueError(f"SMPL-X -> SMPL mapping {path} has shape {m.shape}; expected {hint}")
        return torch.from_numpy(m)

    @staticmethod
    def _load_h36m(h36m_regressor, num_verts: int) -> Tensor | None:
        hint = f"a (17, {num_verts}) H36M joint regressor (.npy)"
        if h36m_regressor is None:
            return None
        m = _load_matrix(h36m_regressor, "H36M regressor", hint)
        if m.shape != (17, num_verts):
            raise ValueError(f"H36M regressor {h36m_regressor} has shape {m.shape}; expected {hint}")
        return torch.from_numpy(m)

    def require_h36m(self, protocol: str = "3dpw") -> None:
        """Raise FileNotFoundError naming ``J_regressor_h36m.npy`` and its source (the release's
        utils.zip) when this body has no H36M regressor, which ``protocol`` needs."""
        if not self.has_h36m:
            try:
                find_utils_file("J_regressor_h36m.npy", self.model_file, self.utils_dir)
            except FileNotFoundError as err:
                raise FileNotFoundError(f"the {protocol} protocol needs an H36M regressor: {err}") from None

    # -- forward ---------------------------------------------------------------------------
    def _check(self, rotmat: Tensor, betas: Tensor) -> tuple:
        J, nb = self.num_joints, self.num_betas
        if rotmat.ndim < 3 or rotmat.shape[-3:] != (J, 3, 3):
            raise ValueError(f"rotmat must have shape (..., {J}, 3, 3), got {tuple(rotmat.shape)}")
        if betas.ndim < 1 or betas.shape[-1] != nb:
            raise ValueError(f"betas must have shape (..., {nb}), got {tuple(betas.shape)}")
        try:
            lead = torch.broadcast_shapes(rotmat.shape[:-3], betas.shape[:-1])
        except RuntimeError as err:
            raise ValueError(f"leading dims of rotmat {tuple(rotmat.shape[:-3])} and betas "
                             f"{tuple(betas.shape[:-1])} do not broadcast") from err
        n = int(np.prod(lead))
        if n == 0:
            raise ValueError(f"rotmat / betas have an empty batch {tuple(lead)}")
        if self.validate_args and not (torch.isfinite(rotmat).all() and torch.isfinite(betas).all()):
            raise ValueError("rotmat and betas must be finite (found NaN or inf)")
        rot = rotmat.expand(*lead, J, 3, 3).reshape(n, J, 3, 3)
        bet = betas.to(rotmat.dtype).expand(*lead, nb).reshape(n, nb)
        return lead, rot, bet

    def forward(self, rotmat: Tensor, betas: Tensor, return_vertices: bool = False,
                joints_only: bool = True, h36m: bool = True) -> dict:
        lead, rot, betas = self._check(rotmat, betas)
        with_h36m = h36m and self.has_h36m
        if joints_only and not return_vertices:
            # without H36M joints only the COCO face vertices need skinning
            vertex_set, regressor, face_idx = (("keypoints", self._sub_h36m, self._sub_face)
                                               if with_h36m else ("face", None, None))
        else:
            vertex_set, face_idx = "all", self._sub_idx[self._sub_face]
            regressor = self.h36m_regressor if with_h36m else None
        joints, verts, h36m_joints = self._skin(rot, betas, vertex_set, regressor)
        face = verts if face_idx is None else verts[:, face_idx]
        out = {"joints": joints}
        if return_vertices:
            out["vertices"] = verts
            if hasattr(self, "smplx_to_smpl"):
                out["vertices_smpl"] = torch.einsum("sv,nvc->nsc", self.smplx_to_smpl.to(rot.dtype), verts)
        out["coco17"] = torch.cat([face, joints[:, list(COCO17_FROM_SMPL)]], dim=1)
        if h36m_joints is not None:
            out["h36m17"] = h36m_joints
            out["lsp14"] = h36m_joints[:, list(H36M_TO_LSP14)]
        return {k: v.reshape(*lead, *v.shape[1:]) for k, v in out.items()}

    def _skin(self, rot: Tensor, betas: Tensor, vertex_set: str, regressor: Tensor | None = None
              ) -> tuple:
        """Posed joints (N, J, 3), the vertices (N, K, 3) of ``vertex_set`` ("all",
        "keypoints" or "face") and, with a ``regressor`` (R, K), the regressed points
        (N, R, 3) (else None), by linear blend skinning as smplx's ``lbs`` computes it.

        Hand-written rather than ``smplx.lbs.lbs`` (the reference of the tests): the rest
        joints come from precomputed regressor products (no (V, J) regression per body); the
        shape and pose blend shapes of a tile of vertices and bodies are one matrix product
        (``addmm`` over the stacked directions, pose correctives of the body joints only); the
        skinning transforms are (k, J) x (J, s) products applied by multiply-adds instead of a
        batch of 3 x 3 products per vertex; the regressor is applied per tile (on the CPU both
        over what the tile uses only: see :data:`SPARSE_TILE_DEVICES`). The tiles
        (:data:`_SKIN_ENTRIES`, :data:`_CPU_VERTEX_BLOCK`) keep the body-minor layout (vertex,
        coordinate, body), so the elementwise skinning reads contiguous rows of bodies, and
        the twelve entries of the per-vertex transforms are made one at a time and consumed
        while cache-resident (16 images x 100 SMPL meshes on 2 threads: 0.13 s for this stage
        instead of 0.19 s with all twelve written out first).
        """
        n, dt = rot.shape[0], rot.dtype
        template = getattr(self, f"_{vertex_set}_template").to(dt)
        dirs = getattr(self, f"_{vertex_set}_dirs").to(dt)
        weights = getattr(self, f"_{vertex_set}_weights").to(dt)
        regressor = None if regressor is None else regressor.to(dt)
        rest = self._j_template.to(dt) + torch.einsum("nb,jcb->njc", betas, self._j_shapedirs.to(dt))
        joints, A = kinematic_chain(rot, rest, self._parent_list)
        eye = torch.eye(3, dtype=dt, device=rot.device)
        features = torch.cat([betas, (rot[:, 1:] - eye).reshape(n, -1)], dim=1).T   # (P, N)
        transforms = A[..., :3, :].permute(1, 2, 3, 0).contiguous()           # (J, 3, 4, N)
        count = template.shape[0]
        block = _vertices_per_tile(rot.device, count)
        step = max(1, _SKIN_ENTRIES // block)
        # Without autograd the tiles are written into the output in place. With it they are
        # joined by ``cat``, whose backward only slices the gradient: each in-place write into
        # a slice would make the backward copy the whole (N, K, 3) gradient once (42 copies
        # of 132 MB for 1600 SMPL meshes).
        tracked = torch.is_grad_enabled() and (rot.requires_grad or betas.requires_grad)
        verts = None if tracked else rot.new_empty(n, count, 3)
        regressed = None if regressor is None else rot.new_zeros(n, regressor.shape[0], 3)
        operands = [_tile_operands(weights[first:first + block],
                                   None if regressor is None else regressor[:, first:first + block],
                                   rot.device.type in SPARSE_TILE_DEVICES)
                    for first in range(0, count, block)]
        chunks = []
        for start in range(0, n, step):
            rows = slice(start, start + step)
            tiles = []
            for first, (w, used, reg, reg_rows) in zip(range(0, count, block), operands):
                vertices = slice(first, first + block)
                v = torch.addmm(template[vertices].reshape(-1, 1),
                                dirs[:, 3 * first:3 * (first + block)].T, features[:, rows])
                v = v.view(-1, 3, v.shape[-1])                                  # (k, 3, s)
                A_tile = transforms[..., rows][used]                            # (J', 3, 4, s)
                coords = []
                for c in range(3):      # posed_c = T_c3 + sum_d T_cd v_d, T = weights @ A
                    posed = w @ A_tile[:, c, 3]                                 # (k, s)
                    for d in range(3):
                        posed = posed.addcmul_(w @ A_tile[:, c, d], v[:, d])
                    if tracked:
                        coords.append(posed)
                    else:       # written as (s, k) columns while the tile is cache-resident
                        verts[rows, vertices, c] = posed.T
                    if reg is not None:
                        regressed[rows, :, c] += (reg @ posed[reg_rows]).T          # (s, R)
                if tracked:
                    tiles.append(torch.stack([p.T for p in coords], dim=-1))    # (s, k, 3)
            if tracked:
                chunks.append(torch.cat(tiles, dim=1))                          # (s, K, 3)
        if tracked:
            verts = chunks[0] if len(chunks) == 1 else torch.cat(chunks)
        return joints, verts, regressed
