"""OpenCV painter's rasterizer: coverage against brute-force point-in-triangle tests, depth
order, back-face culling and Lambert shading against hand-computed values."""
import numpy as np
import pytest

from humr.viz.render import render_mesh

F, C, HW = (40.0, 40.0), (16.0, 16.0), (32, 32)


def _unproject(uv, z):
    """Camera-frame points at depth z projecting to continuous pixel coords uv (N, 2)."""
    uv = np.asarray(uv, dtype=np.float64)
    return np.stack([(uv[:, 0] - C[0]) * z / F[0], (uv[:, 1] - C[1]) * z / F[1],
                     np.full(len(uv), z)], -1)


def _cross2d(u, v):
    """z of the cross product of 2D vectors (..., 2) (numpy >= 2 refuses 2D ``np.cross``)."""
    return u[..., 0] * v[..., 1] - u[..., 1] * v[..., 0]


def _inside(tri, pts):
    """Brute force: points (N, 2) strictly inside a 2D triangle (3, 2) (sign of edge functions)."""
    d = [_cross2d(tri[(i + 1) % 3] - tri[i], pts - tri[i]) for i in range(3)]
    d = np.stack(d)
    return (d > 0).all(0) | (d < 0).all(0)


def test_coverage_matches_pixel_centres_up_to_half_a_pixel():
    tri2d = np.array([[5.3, 4.1], [27.2, 9.7], [11.6, 28.4]])
    faces = np.array([[0, 2, 1]])                    # normal towards the camera
    out = render_mesh(_unproject(tri2d, 4.0), faces, F, C, HW, cull_backfaces=False)
    yy, xx = np.mgrid[0:32, 0:32]
    centres = np.stack([xx.ravel() + 0.5, yy.ravel() + 0.5], -1)
    inside = _inside(tri2d, centres).reshape(32, 32)
    # every pixel whose centre is inside is drawn; nothing drawn farther than a pixel outside
    assert out["silhouette"][inside].all()
    grown = np.zeros_like(inside)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            grown |= np.roll(np.roll(inside, dy, 0), dx, 1)
    assert not (out["silhouette"] & ~grown).any()
    assert np.isinf(out["depth"][~out["silhouette"]]).all()


def test_nearer_face_wins_whatever_the_face_order():
    near = _unproject([[4, 4], [20, 4], [4, 20]], 2.0)
    far = _unproject([[10, 10], [28, 10], [10, 28]], 5.0)
    verts = np.concatenate([near, far])
    for faces in (np.array([[0, 2, 1], [3, 5, 4]]), np.array([[3, 5, 4], [0, 2, 1]])):
        colors = np.array([[1, 0, 0]] * 3 + [[0, 0, 1]] * 3, dtype=float)
        out = render_mesh(verts, faces, F, C, HW, color=colors, ambient=1.0)
        assert out["rgb"][11, 11].tolist() == [255, 0, 0]      # overlap: the near (red) face
        assert out["rgb"][20, 14].tolist() == [0, 0, 255]      # only the far face
        assert out["depth"][11, 11] == pytest.approx(2.0)


def test_backface_culling():
    verts = _unproject([[4, 4], [28, 4], [4, 28]], 3.0)
    away = np.array([[0, 1, 2]])                    # normal pointing away from the camera
    assert not render_mesh(verts, away, F, C, HW)["silhouette"].any()
    assert render_mesh(verts, away, F, C, HW, cull_backfaces=False)["silhouette"].any()


def test_lambert_shading_of_a_tilted_face():
    # plane through (0, 0, 4) tilted by 60 degrees about the y axis, centred on the optical axis
    a = np.deg2rad(60)
    s = 0.5
    pts = np.array([[-s, -s, 0], [s, -s, 0], [0, s, 0]])
    rot = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    verts = pts @ rot.T + [0, 0, 4]
    centre = verts.mean(0)
    faces = np.array([[0, 2, 1]])
    out = render_mesh(verts, faces, F, C, HW, color=(1.0, 0.5, 0.2), ambient=0.3,
                      cull_backfaces=False)
    normal = np.cross(verts[2] - verts[0], verts[1] - verts[0])
    cos = abs(normal @ centre) / np.linalg.norm(normal) / np.linalg.norm(centre)
    expected = np.round(255 * np.array([1.0, 0.5, 0.2]) * (0.3 + 0.7 * cos))
    pix = out["rgb"][out["silhouette"]]
    assert np.abs(pix - expected).max() <= 1


def test_directional_light_shades_by_the_normal_alone():
    """``light``: s = max(0, n . l) for the unit outward normal, whatever the viewing ray; a
    face and its mirror image about the image plane's direction (tilted towards the camera /
    away) look the same under the headlight and differ under a light from above."""
    a, s = np.deg2rad(40), 0.4
    pts = np.array([[-s, -s, 0], [s, -s, 0], [0, 2 * s, 0]])   # centroid on the optical axis
    faces = np.array([[0, 2, 1]])                      # outward normal towards the camera (-z)

    def tilted(sign):                                  # about the x axis, top towards / away
        rot = np.array([[1, 0, 0], [0, np.cos(a), -sign * np.sin(a)],
                        [0, sign * np.sin(a), np.cos(a)]])
        return pts @ rot.T + [0, 0, 4]

    def pixels(verts, light):
        out = render_mesh(verts, faces, F, C, HW, color=(1.0, 1.0, 1.0), ambient=0.2,
                          light=light)
        return out["rgb"][out["silhouette"]][:, 0].astype(float)

    up = np.array([0.0, -1.0, -1.0]) / np.sqrt(2)     # above and in front (y points down)
    for sign in (1, -1):
        verts = tilted(sign)
        normal = np.cross(verts[2] - verts[0], verts[1] - verts[0])
        normal /= np.linalg.norm(normal)
        assert normal[2] < 0
        expected = 255 * (0.2 + 0.8 * max(0.0, normal @ up))
        assert np.abs(pixels(verts, 3 * up) - expected).max() <= 1        # any length
        assert np.abs(pixels(verts, [0, 0, -1]) - 255 * (0.2 + 0.8 * -normal[2])).max() <= 1
        assert np.abs(pixels(verts, [0, 0, 1]) - 255 * 0.2).max() <= 1     # from behind
    head = [pixels(tilted(sign), None).mean() for sign in (1, -1)]
    lit = [pixels(tilted(sign), up).mean() for sign in (1, -1)]
    assert abs(head[0] - head[1]) <= 1 and abs(lit[0] - lit[1]) > 50
    for bad in ([0, 0, 0], [1, 0], [np.nan, 0, 1]):
        with pytest.raises(ValueError, match="light"):
            render_mesh(tilted(1), faces, F, C, HW, light=bad)


def test_depth_cue_scales_each_face_by_its_depth_behind_the_mean_vertex():
    """``depth_cue`` k: colour * shade * exp(-k (z_face - z_mean)); two camera-facing faces at
    4 m and 5 m (mean vertex depth 4.5 m), lit head-on so that shade = 1."""
    near = _unproject([[2, 2], [14, 2], [14, 14]], 4.0)
    far = _unproject([[18, 18], [30, 18], [30, 30]], 5.0)
    verts, faces = np.concatenate([near, far]), np.array([[0, 2, 1], [3, 5, 4]])

    def face_values(k):
        out = render_mesh(verts, faces, F, C, HW, color=(0.5, 0.5, 0.5), ambient=0.2,
                          light=[0, 0, -1], depth_cue=k)
        rgb = out["rgb"][..., 0].astype(float)
        return rgb[out["depth"] == 4.0], rgb[out["depth"] == 5.0]

    for k in (0.0, 1.0, 2.5):
        lit_near, lit_far = face_values(k)
        assert len(lit_near) > 20 and len(lit_far) > 20
        assert np.abs(lit_near - min(255, 127.5 * np.exp(0.5 * k))).max() <= 1
        assert np.abs(lit_far - 127.5 * np.exp(-0.5 * k)).max() <= 1
    for bad in (-0.5, np.nan, np.inf):
        with pytest.raises(ValueError, match="depth_cue"):
            render_mesh(verts, faces, F, C, HW, depth_cue=bad)


def test_bad_inputs_name_the_argument():
    verts = _unproject([[4, 4], [28, 4], [4, 28]], 3.0)
    with pytest.raises(ValueError, match="vertices"):
        render_mesh(verts[:, :2], np.array([[0, 1, 2]]), F, C, HW)
    with pytest.raises(ValueError, match="faces"):
        render_mesh(verts, np.array([0, 1, 2]), F, C, HW)
    with pytest.raises(ValueError, match="color"):
        render_mesh(verts, np.array([[0, 1, 2]]), F, C, HW, color=np.ones((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        render_mesh(verts * np.nan, np.array([[0, 1, 2]]), F, C, HW)


def _grown_inside(tri, pts, grow=0.5):
    """Brute force: points (N, 2) within ``grow`` px of the inside of every edge line of a 2D
    triangle (3, 2) and inside its box grown by ``grow`` (the renderer's coverage rule)."""
    area = _cross2d(tri[1] - tri[0], tri[2] - tri[0])
    ok = ((pts > tri.min(0) - grow) & (pts < tri.max(0) + grow)).all(1)
    for i in range(3):
        a, b = tri[i], tri[(i + 1) % 3]
        ok &= np.sign(area) * _cross2d(b - a, pts - a) / np.linalg.norm(b - a) > -grow
    return ok


def test_random_mesh_matches_a_per_pixel_z_buffer():
    """Faces of all sizes (several size buckets, partly outside the image) against a
    pixel-by-pixel loop: coverage by the grown-face rule, nearest mean depth wins."""
    rng = np.random.default_rng(0)
    n = 60
    centres = rng.uniform(-4, 36, (n, 1, 2))
    uv = centres + rng.normal(0, 1, (n, 3, 2)) * rng.choice([0.7, 3.0, 12.0], (n, 1, 1))
    z = rng.uniform(2, 6, (n, 1)).repeat(3, 1)
    verts = np.concatenate([_unproject(t, zz[0]) for t, zz in zip(uv, z)])
    faces = np.arange(3 * n).reshape(n, 3)
    out = render_mesh(verts, faces, F, C, HW, cull_backfaces=False)
    yy, xx = np.mgrid[0:HW[0], 0:HW[1]]
    centres = np.stack([xx.ravel() + 0.5, yy.ravel() + 0.5], -1)
    expect = np.full(HW[0] * HW[1], np.inf)
    for k in range(n):                                  # one face at a time, every pixel
        hit = _grown_inside(uv[k], centres) & (z[k, 0] <= expect)
        expect[hit] = z[k, 0]
    expect = expect.reshape(HW)
    np.testing.assert_allclose(out["depth"], expect, rtol=1e-6)
    assert (out["silhouette"] == np.isfinite(expect)).all()
