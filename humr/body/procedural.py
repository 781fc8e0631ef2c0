"""Procedural SMPL-format body model (the licensed SMPL files cannot be shipped).

:func:`make_body` writes ``OUT_DIR/smpl/SMPL_NEUTRAL.pkl``, which ``smplx.create(OUT_DIR,
model_type="smpl")`` loads unchanged, and ``OUT_DIR/J_regressor_h36m.npy``. The mesh is one
closed genus-0 surface of exactly 6890 vertices and 13776 faces (= 2 V - 4, the Euler count
of SMPL's topology):

* the body is built from ten generalised cylinders ("tubes": rings of vertices around a
  polyline axis, closed by a pole vertex at each end) around the SMPL rest skeleton: torso,
  head with neck, two arms (collar to finger tips, the hand a flattened mitten), two thumbs,
  two legs (hip to ankle), two feet. Each closed tube has F = 2 V - 4; a connected sum
  (remove one triangle from each of two tubes and join the holes with three quads, hidden
  where the parts overlap) adds 4 faces, so nine of them give one surface with F = 2 V - 4.
* every joint of the SMPL tree lies on a tube axis exactly on a ring, so the J_regressor row
  of a joint is the uniform mean of that ring (convex, and equal to the joint);
* skinning weights are smoothstep blends along each tube between the joint owning a segment
  and the next one;
* the 10 shape directions are linear displacement fields (height, girth, leg / arm / torso
  length, shoulder / hip width, belly, head size, limb girth); the joints follow them through
  the ring regressor;
* smplx's special vertex ids (``smplx.vertex_ids.vertex_ids["smplh"]``) are given to vertices
  at the nose, eyes, ears, toes, heels and finger tips by permuting the vertex order;
* pose correctives (posedirs) are zero.

Units: metres, y up, the body faces +z, SMPL's left is +x. The generator is hand-written
because no library builds SMPL-format bodies.

Example:
    >>> import pickle, tempfile
    >>> out = make_body(tempfile.mkdtemp())
    >>> with open(out / "smpl" / "SMPL_NEUTRAL.pkl", "rb") as f:
    ...     data = pickle.load(f)
    >>> data["v_template"].shape, data["f"].shape, data["J_regressor"].shape
    ((6890, 3), (13776, 3), (24, 6890))
"""
from __future__ import annotations

import itertools
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse
from scipy.spatial import cKDTree
from scipy.special import ndtr

from humr.io import atomic_write_bytes

__all__ = [
    "GENERATOR_VERSION",
    "NUM_FACES",
    "NUM_VERTICES",
    "SMPL_PARENTS",
    "default_body_dir",
    "make_body",
]

GENERATOR_VERSION = "1"
NUM_VERTICES = 6890
NUM_FACES = 13776
NUM_BETAS = 10
# SMPL kinematic tree (parent of each of the 24 joints, -1 for the pelvis)
SMPL_PARENTS = np.array([-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18,
                         19, 20, 21])

# Rest joints of the left side and the spine (metres, y up, +x = SMPL left), close to the
# joints of the official neutral SMPL template; right joints are mirror images.
_SPINE = {0: (0.0, -0.23, 0.0), 3: (0.0, -0.11, -0.005), 6: (0.0, 0.02, 0.01),
          9: (0.0, 0.07, 0.015), 12: (0.0, 0.29, -0.01), 15: (0.0, 0.37, 0.01)}
_LEFT = {1: (0.07, -0.32, 0.0), 4: (0.10, -0.70, 0.0), 7: (0.09, -1.09, -0.03),
         10: (0.11, -1.145, 0.11), 13: (0.08, 0.205, -0.01), 16: (0.17, 0.225, -0.02),
         18: (0.43, 0.215, -0.04), 20: (0.68, 0.225, -0.045), 22: (0.77, 0.22, -0.05)}
_MIRROR = {1: 2, 4: 5, 7: 8, 10: 11, 13: 14, 16: 17, 18: 19, 20: 21, 22: 23}
_FLIP_X = np.array([-1.0, 1.0, 1.0])


@dataclass
class _Tube:
    """One closed tube: pole, S rings of R vertices, pole (local vertex ids in that order)."""

    verts: np.ndarray      # (S*R+2, 3)
    faces: np.ndarray      # (2*S*R, 3), outward oriented
    centers: np.ndarray    # (S*R+2, 3) axis point of each vertex (poles: themselves)
    weights: np.ndarray    # (S*R+2, 24) skinning weights
    rings: np.ndarray      # (S, R) local vertex ids
    ring_y: np.ndarray     # (S,) axis arc length of each ring
    joint_rings: dict      # SMPL joint -> ring index whose centroid is that joint
    part: str
    nose_ring: int | None = None   # head only: the ring holding the nose tip

    def mirrored(self, part: str) -> _Tube:
        """Mirror image in x (left -> right): same local ids, faces re-oriented, joints renamed."""
        weights = np.zeros_like(self.weights)
        perm = np.arange(24)
        for left, right in _MIRROR.items():
            perm[left], perm[right] = right, left
        weights[:, perm] = self.weights
        return _Tube(self.verts * _FLIP_X, self.faces[:, ::-1].copy(), self.centers * _FLIP_X,
                     weights, self.rings, self.ring_y,
                     {int(perm[j]): r for j, r in self.joint_rings.items()}, part)


def _tube(knots, counts, radii, ref, R, caps, seg_joints, joint_knots, part, blend=0.04):
    """Generalised cylinder around the polyline ``knots`` (m, 3).

    Segment i gets ``counts[i]`` rings (the knot at its start included, except the first knot,
    which is a pole); ``radii`` (m, 2) are the half-axes along u (``ref`` made orthogonal to
    the axis) and v = t x u, interpolated linearly in arc length and rounded to a half-ellipse
    over ``caps`` = (start, end) lengths. ``seg_joints[i]`` is the SMPL joint moving segment i;
    weights blend over a Gaussian of width ``blend`` (m) along the axis.
    ``joint_knots`` maps SMPL joints to the interior knot they sit on.
    """
    knots = np.asarray(knots, float)
    radii = np.asarray(radii, float)
    seg = np.diff(knots, axis=0)
    seg_len = np.linalg.norm(seg, axis=1)
    seg_dir = seg / seg_len[:, None]
    arc_knots = np.concatenate([[0.0], np.cumsum(seg_len)])
    s, seg_of, knot_ring = [], [], {}
    for i, n in enumerate(counts):
        for k in range(n):
            if i == 0 and k == 0:
                continue
            if k == 0:
                knot_ring[i] = len(s)
            s.append(arc_knots[i] + seg_len[i] * k / n)
            seg_of.append(i)
    s, seg_of = np.array(s), np.array(seg_of)
    S = len(s)
    centers = np.stack([np.interp(s, arc_knots, knots[:, d]) for d in range(3)], axis=1)
    tang = seg_dir[seg_of].copy()
    for i, r in knot_ring.items():   # knots: mean direction of the two segments
        t = seg_dir[i - 1] + seg_dir[i]
        tang[r] = t / np.linalg.norm(t)
    rad = np.stack([np.interp(s, arc_knots, radii[:, d]) for d in range(2)], axis=1)
    total = arc_knots[-1]
    for d, c in ((s, caps[0]), (total - s, caps[1])):
        a = np.clip(d / c, 0.0, 1.0)
        rad *= np.sqrt(1.0 - (1.0 - a) ** 2)[:, None]
    u = np.asarray(ref, float)[None] - (tang @ np.asarray(ref, float))[:, None] * tang
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    v = np.cross(tang, u)
    theta = np.pi / 2 + 2 * np.pi * np.arange(R) / R
    ring_pts = (centers[:, None] + rad[:, 0, None, None] * np.cos(theta)[None, :, None] * u[:, None]
                + rad[:, 1, None, None] * np.sin(theta)[None, :, None] * v[:, None])
    verts = np.concatenate([knots[:1], ring_pts.reshape(-1, 3), knots[-1:]])
    all_centers = np.concatenate([knots[:1], np.repeat(centers, R, axis=0), knots[-1:]])
    rings = 1 + np.arange(S * R).reshape(S, R)
    nxt = np.roll(rings, -1, axis=1)
    quads = [np.stack([rings[:-1], nxt[:-1], nxt[1:]], -1), np.stack([rings[:-1], nxt[1:], rings[1:]], -1)]
    last = S * R + 1
    fans = [np.stack([np.zeros(R, int), nxt[0], rings[0]], -1),
            np.stack([np.full(R, last), rings[-1], nxt[-1]], -1)]
    faces = np.concatenate([q.reshape(-1, 3) for q in quads] + fans)
    if _signed_volume(verts, faces) < 0:
        faces = faces[:, ::-1].copy()
    # skinning weights: the piecewise-constant bone ownership along the arc smoothed by a
    # Gaussian of width `blend` (convex, sums to 1; short segments share their weight)
    arc_v = np.concatenate([[0.0], np.repeat(s, R), [total]])
    bounds = np.concatenate([[-np.inf], arc_knots[1:-1], [np.inf]])
    weights = np.zeros((len(verts), 24))
    for i, j in enumerate(seg_joints):
        weights[:, j] += ndtr((bounds[i + 1] - arc_v) / blend) - ndtr((bounds[i] - arc_v) / blend)
    joint_rings = {j: knot_ring[k] for j, k in joint_knots.items()}
    return _Tube(verts, faces, all_centers, weights, rings, s, joint_rings, part)


def _signed_volume(verts: np.ndarray, faces: np.ndarray) -> float:
    a, b, c = (verts[faces[:, i]] for i in range(3))
    return float(np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0)


def _joints(rng: np.random.Generator) -> np.ndarray:
    """(24, 3) rest joints: the template proportions with a seeded ~2% jitter per body part."""
    J = np.zeros((24, 3))
    for j, p in _SPINE.items():
        J[j] = p
    for j, p in _LEFT.items():
        J[j] = p
    # scale the bones of each chain about its root (symmetric: left and right share factors)
    for chain in ([1, 4, 7, 10], [13, 16, 18, 20, 22], [0, 3, 6, 9, 12, 15]):
        f = 1.0 + 0.02 * rng.standard_normal()
        for a, b in itertools.pairwise(chain):
            J[b] = J[a] + (np.array(_LEFT.get(b, _SPINE.get(b))) - np.array(_LEFT.get(a, _SPINE.get(a)))) * f
    for left, right in _MIRROR.items():
        J[right] = J[left] * _FLIP_X
    return J


def _parts(J: np.ndarray, girth: float) -> list[_Tube]:
    """The ten tubes around the rest joints ``J`` (24, 3); ``girth`` scales all radii."""
    g = girth
    up, side = (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)
    ax = lambda j, dy=0.0, dz=0.0: J[j] + np.array([0.0, dy, dz])
    torso = _tube(
        [J[0] + (0, -0.15, 0.0), J[0] + (0, -0.09, 0.0), J[0], J[3], J[6], J[9], J[9] + (0, 0.13, -0.015),
         J[12]],
        [4, 5, 7, 7, 3, 7, 5], g * np.array(
            [[0.13, 0.09], [0.165, 0.105], [0.17, 0.11], [0.145, 0.095], [0.15, 0.10], [0.16, 0.105],
             [0.185, 0.095], [0.16, 0.08]]),
        side, 40, (0.06, 0.1), [0, 0, 0, 3, 6, 9, 9], {0: 2, 3: 3, 6: 4, 9: 5}, "torso", blend=0.04)
    head = _tube(
        [ax(12, -0.08, -0.02), J[12], J[15], ax(15, 0.08, 0.01), ax(15, 0.205, 0.0)],
        [4, 4, 5, 6], g * np.array([[0.05, 0.05], [0.055, 0.055], [0.06, 0.075], [0.08, 0.1], [0.075, 0.09]]),
        side, 32, (0.02, 0.11), [9, 12, 15, 15], {12: 1, 15: 2}, "head", blend=0.03)
    _nose(head)
    arm = _tube(
        [J[13] - (0.045, 0, 0), J[13], J[16], J[18], J[20], J[22], J[22] + (0.10, -0.005, 0.0)],
        [2, 5, 16, 14, 6, 7], g * np.array([[0.05, 0.05], [0.055, 0.055], [0.055, 0.055], [0.04, 0.042],
                                            [0.026, 0.034], [0.016, 0.045], [0.012, 0.04]]),
        up, 20, (0.03, 0.04), [9, 13, 16, 18, 20, 22], {13: 1, 16: 2, 18: 3, 20: 4, 22: 5}, "arm", blend=0.03)
    thumb = _tube(
        [J[20] + (0.005, -0.01, 0.015), J[20] + (0.05, -0.015, 0.05), J[20] + (0.085, -0.02, 0.075)],
        [3, 3], g * np.array([[0.014, 0.014], [0.012, 0.012], [0.01, 0.01]]),
        up, 7, (0.01, 0.015), [20, 22], {}, "thumb", blend=0.025)
    leg = _tube(
        [ax(1, 0.1, 0.0), J[1], J[4], J[4] + 0.35 * (J[7] - J[4]), J[7], ax(7, -0.05, 0.0)],
        [5, 19, 7, 13, 3], g * np.array([[0.075, 0.075], [0.085, 0.085], [0.052, 0.055], [0.057, 0.062],
                                         [0.035, 0.038], [0.03, 0.03]]),
        side, 24, (0.05, 0.03), [0, 1, 4, 4, 7], {1: 1, 4: 2, 7: 4}, "leg", blend=0.04)
    foot = _tube(
        [J[7] + (0.0, -0.045, -0.06), J[7] + (0.002, -0.045, -0.01), J[10], J[10] + (0.005, -0.01, 0.075)],
        [4, 10, 5], g * np.array([[0.03, 0.035], [0.042, 0.042], [0.028, 0.05], [0.018, 0.042]]),
        up, 16, (0.035, 0.03), [7, 7, 10], {10: 2}, "foot", blend=0.025)
    left = [arm, thumb, leg, foot]
    return [torso, head] + left + [t.mirrored(t.part) for t in left]


def _nose(head: _Tube) -> None:
    """Push the nose vertex forward (its ring is no joint ring, so the regressor is untouched)."""
    r = int(np.argmin(np.abs(head.ring_y - (head.ring_y[head.joint_rings[15]] + 0.08))))
    front = head.rings[r][np.argmax(head.verts[head.rings[r], 2])]   # the most forward vertex
    head.verts[front, 2] += 0.025
    head.nose_ring = r


def _bridges(parts: list[_Tube], verts: np.ndarray, weights: np.ndarray, offsets: list[int],
             pairs) -> np.ndarray:
    """Connected sums: for each pair of parts, two close faces with similar skinning weights are
    removed and their holes joined by a prism of three quads (hidden inside the body)."""
    faces = [p.faces + o for p, o in zip(parts, offsets)]
    removed = [set() for _ in parts]
    extra = []
    for a, b in pairs:
        fa, fb = faces[a], faces[b]
        ca, cb = verts[fa].mean(1), verts[fb].mean(1)
        wa, wb = weights[fa].mean(1), weights[fb].mean(1)
        free_a = np.flatnonzero([i not in removed[a] for i in range(len(fa))])
        free_b = np.flatnonzero([i not in removed[b] for i in range(len(fb))])
        # among near face pairs, the one whose skinning weights agree best (0.1 m per unit L1)
        dist, nn = cKDTree(cb[free_b]).query(ca[free_a], k=32)
        nn = free_b[nn]
        cost = dist + 0.1 * np.abs(wa[free_a][:, None] - wb[nn]).sum(-1)
        row, col = np.unravel_index(np.argmin(cost), cost.shape)
        ia, ib = free_a[row], nn[row, col]
        removed[a].add(ia)
        removed[b].add(ib)
        (p, q, r), (d, e, f) = fa[ia], fb[ib]
        # hole a keeps half-edges (q,p),(r,q),(p,r), hole b (e,d),(f,e),(d,f); the prism takes
        # the opposite ones, pairing p-d, q-f, r-e (x1 -> y1 is the partner of x0 -> y0)
        for (x0, x1), (y0, y1) in (((p, q), (d, f)), ((q, r), (f, e)), ((r, p), (e, d))):
            extra += [(x0, x1, y1), (x0, y1, y0)]
    kept = [f[[i for i in range(len(f)) if i not in rm]] for f, rm in zip(faces, removed)]
    return np.concatenate(kept + [np.array(extra)])


def _special_vertices(parts, offsets) -> dict:
    """Our vertex for each name of ``smplx.vertex_ids.vertex_ids['smplh']``."""
    head, arm_l, thumb_l, foot_l = parts[1], parts[2], parts[3], parts[5]
    arm_r, thumb_r, foot_r = parts[6], parts[7], parts[9]
    o_head = offsets[1]
    out = {"nose": o_head + head.rings[head.nose_ring][np.argmax(head.verts[head.rings[head.nose_ring], 2])]}
    # eyes: 3 cm above the nose, 22.5 deg (2 of 32 steps) to each side of the front
    ry = head.ring_y[head.nose_ring] + 0.03
    r_eye = head.rings[int(np.argmin(np.abs(head.ring_y - ry)))]
    r_ear = head.rings[int(np.argmin(np.abs(head.ring_y - (head.ring_y[head.nose_ring] + 0.01))))]
    for name, ring, direction in (("leye", r_eye, (0.38, 0, 0.92)), ("reye", r_eye, (-0.38, 0, 0.92)),
                                  ("lear", r_ear, (1, 0, -0.1)), ("rear", r_ear, (-1, 0, -0.1))):
        out[name] = o_head + ring[np.argmax(head.verts[ring] @ np.array(direction))]

    def extreme(part, off, direction, rings=None):
        ids = part.rings[rings].ravel() if rings is not None else np.arange(len(part.verts))
        return off + ids[np.argmax(part.verts[ids] @ np.asarray(direction, float))]

    for side, arm, thumb, foot, o_arm, o_thumb, o_foot, sx in (
            ("l", arm_l, thumb_l, foot_l, offsets[2], offsets[3], offsets[5], 1.0),
            ("r", arm_r, thumb_r, foot_r, offsets[6], offsets[7], offsets[9], -1.0)):
        tip_ring = [arm.rings.shape[0] - 3]
        for name, z in (("index", 1.0), ("middle", 0.35), ("ring", -0.35), ("pinky", -1.0)):
            out[side + name] = extreme(arm, o_arm, (0.0, 0.25, z), tip_ring)
        out[side + "thumb"] = o_thumb + len(thumb.verts) - 1
        big, small, heel = ("LBigToe", "LSmallToe", "LHeel") if side == "l" else ("RBigToe", "RSmallToe", "RHeel")
        out[big] = extreme(foot, o_foot, (-0.35 * sx, -0.2, 1.0))
        out[small] = extreme(foot, o_foot, (0.5 * sx, -0.2, 1.0))
        out[heel] = extreme(foot, o_foot, (0.0, -0.6, -1.0))
    return out


def _shapedirs(P, C, part, J) -> np.ndarray:
    """(V, 3, 10) displacement fields per unit beta (see module docstring)."""
    x, y = P[:, 0], P[:, 1]
    sx = np.sign(x)
    radial = P - C
    is_ = {name: part == name for name in ("torso", "head", "arm", "thumb", "leg", "foot")}
    limb = is_["arm"] | is_["leg"]
    arm_like = is_["arm"] | is_["thumb"]
    leg_like = is_["leg"] | is_["foot"]
    D = np.zeros(P.shape + (NUM_BETAS,))
    # 0 height: uniform scale about the origin
    D[..., 0] = 0.045 * P
    # 1 weight: girth of every part
    g = np.select([is_["torso"], limb], [0.3, 0.2], 0.06)
    D[..., 1] = g[:, None] * radial
    # 2 leg length: stretch below the hips
    hip_y, ankle_y = J[1, 1], J[7, 1]
    D[:, 1, 2] = -0.06 * np.clip((hip_y - y) / (hip_y - ankle_y), 0.0, 1.0)
    # 3 arm length: stretch beyond the shoulders
    sh_x, wr_x = J[16, 0], J[20, 0]
    D[:, 0, 3] = np.where(arm_like, 0.05 * sx * np.clip((np.abs(x) - sh_x) / (wr_x - sh_x), 0.0, 1.0), 0.0)
    # 4 torso length: stretch between pelvis and neck, head and arms carried along
    t = lambda yy: np.clip((yy - J[0, 1]) / (J[12, 1] - J[0, 1]), 0.0, 1.0)
    D[:, 1, 4] = 0.05 * np.select([is_["torso"], is_["head"], arm_like], [t(y), 1.0, t(J[13, 1])], 0.0)
    # 5 shoulder width
    D[:, 0, 5] = 0.03 * np.select([arm_like, is_["torso"]],
                                  [sx, x / 0.18 * np.clip((y - J[6, 1]) / (J[13, 1] - J[6, 1]), 0, 1)], 0.0)
    # 6 hip width
    D[:, 0, 6] = 0.025 * np.select([leg_like, is_["torso"]],
                                   [sx, x / 0.17 * np.clip((J[3, 1] - y) / (J[3, 1] - J[1, 1]), 0, 1)], 0.0)
    # 7 belly depth
    D[:, 2, 7] = np.where(is_["torso"], 0.35 * radial[:, 2] * np.exp(-((y - J[3, 1]) / 0.12) ** 2), 0.0)
    # 8 head size about the head joint
    D[..., 8] = np.where(is_["head"][:, None], 0.08 * (P - J[15]), 0.0)
    # 9 limb girth against torso girth
    D[..., 9] = np.select([limb, is_["torso"]], [0.2, -0.1], 0.0)[:, None] * radial
    return D


def _build(seed: int) -> tuple[dict, np.ndarray]:
    """The SMPL pickle's dict and the (17, V) H36M regressor, in the final vertex order."""
    rng = np.random.default_rng(seed)
    J = _joints(rng)
    parts = _parts(J, girth=1.0 + 0.03 * rng.standard_normal())
    sizes = [len(p.verts) for p in parts]
    offsets = list(np.cumsum([0] + sizes[:-1]))
    P = np.concatenate([p.verts for p in parts])
    assert len(P) == NUM_VERTICES, f"vertex budget {len(P)} != {NUM_VERTICES}"
    C = np.concatenate([p.centers for p in parts])
    W = np.concatenate([p.weights for p in parts])
    part = np.concatenate([[p.part] * n for p, n in zip(parts, sizes)])
    # connected sums: torso-head, torso-arms, torso-legs, legs-feet, arms-thumbs
    faces = _bridges(parts, P, W, offsets, [(0, 1), (0, 2), (0, 6), (0, 4), (0, 8), (4, 5), (8, 9),
                                         (2, 3), (6, 7)])
    assert len(faces) == NUM_FACES, f"face budget {len(faces)} != {NUM_FACES}"
    # joint regressor: uniform weights on each joint's ring
    reg = np.zeros((24, NUM_VERTICES))
    for p, o in zip(parts, offsets):
        for j, r in p.joint_rings.items():
            reg[j, o + p.rings[r]] = 1.0 / p.rings.shape[1]
    D = _shapedirs(P, C, part, J)
    h36m = _h36m_regressor(reg, parts, offsets)
    # vertex order: smplx's special ids at the right body parts
    from smplx.vertex_ids import vertex_ids

    special = _special_vertices(parts, offsets)
    targets = np.array([vertex_ids["smplh"][k] for k in special])
    sources = np.array(list(special.values()))
    perm = np.full(NUM_VERTICES, -1)
    perm[targets] = sources
    perm[perm < 0] = np.setdiff1d(np.arange(NUM_VERTICES), sources)   # final -> ours
    inv = np.empty_like(perm)
    inv[perm] = np.arange(NUM_VERTICES)
    mirror = cKDTree(P).query(P * _FLIP_X)[1]
    return {
        "v_template": P[perm], "f": inv[faces].astype(np.int64), "J_regressor": scipy.sparse.csc_matrix(reg[:, perm]),
        "weights": W[perm], "kintree_table": np.stack([SMPL_PARENTS, np.arange(24)]).astype(np.int64),
        "shapedirs": D[perm], "posedirs": np.zeros((NUM_VERTICES, 3, 207), np.float32), "J": reg @ P,
        "vert_sym_idxs": inv[mirror[perm]].astype(np.int64), "bs_type": "lrotmin", "bs_style": "lbs",
    }, h36m[:, perm]


def _h36m_regressor(reg: np.ndarray, parts, offsets) -> np.ndarray:
    """(17, V) convex H36M-17 regressor in the order of SPIN's ``J_regressor_h36m.npy``
    (0 pelvis, 1-3 left hip/knee/ankle, 4-6 right, 7 spine, 8 thorax, 9 neck/nose, 10 head top,
    11-13 left shoulder/elbow/wrist, 14-16 right) so that ``H36M_TO_LSP14`` applies."""
    torso, head = parts[0], parts[1]
    H = np.zeros((17, reg.shape[1]))
    for h, j in zip((0, 1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16), (0, 1, 4, 7, 2, 5, 8, 16, 18, 20, 17, 19, 21)):
        H[h] = reg[j]

    def ring_row(tube, off, y):
        r = int(np.argmin(np.abs(tube.ring_y - y)))
        row = np.zeros(reg.shape[1])
        row[off + tube.rings[r]] = 1.0 / tube.rings.shape[1]
        return row

    sp = torso.ring_y
    H[7] = ring_row(torso, offsets[0], 0.5 * (sp[torso.joint_rings[3]] + sp[torso.joint_rings[6]]))
    H[8] = ring_row(torso, offsets[0], sp[torso.joint_rings[9]] + 0.13)
    H[9] = ring_row(head, offsets[1], 0.5 * (head.ring_y[head.joint_rings[12]] + head.ring_y[head.joint_rings[15]]))
    H[10, offsets[1] + len(head.verts) - 1] = 1.0   # the crown pole
    return H


def make_body(out_dir, seed: int = 0, preview: bool = False) -> Path:
    """Write the procedural body to ``out_dir`` and return ``out_dir`` as a Path.

    Files: ``smpl/SMPL_NEUTRAL.pkl`` (SMPL format: v_template (6890, 3), f (13776, 3),
    J_regressor (24, 6890) scipy csc, weights (6890, 24), kintree_table (2, 24), shapedirs
    (6890, 3, 10), posedirs (6890, 3, 207) zeros, J (24, 3), vert_sym_idxs (6890,)),
    ``J_regressor_h36m.npy`` (17, 6890) and, with ``preview``, ``preview.png``.
    The same ``seed`` and generator version give byte-identical files.
    """
    out = Path(out_dir)
    (out / "smpl").mkdir(parents=True, exist_ok=True)
    data, h36m = _build(int(seed))
    atomic_write_bytes(out / "smpl" / "SMPL_NEUTRAL.pkl", pickle.dumps(data, protocol=4))
    buf = _npy_bytes(h36m)
    atomic_write_bytes(out / "J_regressor_h36m.npy", buf)
    if preview:
        from humr.body.preview import render_preview

        render_preview(out, out / "preview.png")
    return out


def _npy_bytes(array: np.ndarray) -> bytes:
    import io

    f = io.BytesIO()
    np.save(f, array)
    return f.getvalue()


def default_body_dir(seed: int = 0) -> Path:
    """Folder of the procedural body, generated on first use: ``$HUMR_HOME`` (default
    ``~/.cache/humr``) ``/procedural-v<humr version>.<generator version>-seed<seed>``."""
    from humr import __version__

    root = Path(os.environ.get("HUMR_HOME", Path.home() / ".cache" / "humr"))
    out = root / f"procedural-v{__version__}.{GENERATOR_VERSION}-seed{seed}"
    if not (out / "smpl" / "SMPL_NEUTRAL.pkl").is_file() or not (out / "J_regressor_h36m.npy").is_file():
        make_body(out, seed=seed)
    return out
