"""Figures: coordinate conventions of the 2D plots, crop cameras, uncertainty colouring."""
import numpy as np
import pytest
import torch

from humr.geometry import full_to_crop, perspective_project
from humr.viz.hypotheses import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    crop_to_pixels,
    denormalize_image,
    plot_hypotheses_2d,
)
from humr.viz.mesh import crop_camera, side_view, uncertainty_colors, vertex_spread


def test_denormalize_inverts_imagenet_normalisation():
    rgb = np.random.default_rng(0).integers(0, 256, size=(5, 4, 3))
    mean, std = np.array(IMAGENET_MEAN), np.array(IMAGENET_STD)
    normalised = ((rgb / 255.0 - mean) / std).transpose(2, 0, 1)
    assert np.array_equal(denormalize_image(torch.from_numpy(normalised)), rgb)
    with pytest.raises(ValueError, match=r"\(3, R, R\)"):
        denormalize_image(np.zeros((4, 4, 3)))


def test_crop_to_pixels_follows_the_pixel_convention():
    # pixel i covers [i, i+1): crop -1 -> 0, +1 -> R, pixel centre 0.5 -> (0.5 / R) * 2 - 1
    R = 8
    assert crop_to_pixels(np.array([-1.0, 1.0, (0.5 / R) * 2 - 1]), R).tolist() == [0, R, 0.5]


def test_plot_hypotheses_places_points_on_image_pixels(tmp_path):
    R = 16
    gen = torch.Generator().manual_seed(1)
    hyp = torch.rand(6, 17, 2, generator=gen) * 2 - 1
    gt = torch.rand(17, 2, generator=gen) * 2 - 1
    image = np.zeros((R, R, 3), np.uint8)
    fig = plot_hypotheses_2d(image, hyp, joint=9, gt=gt, mask=np.ones((R, R)))
    offsets = [c.get_offsets() for c in fig.axes[0].collections]
    # imshow puts pixel centres at integers: a point at continuous pixel x is drawn at x - 0.5
    samples = (hyp[1:, 9].numpy() + 1) / 2 * R - 0.5
    mode = (hyp[0, 9].numpy() + 1) / 2 * R - 0.5
    star = (gt[9].numpy() + 1) / 2 * R - 0.5
    np.testing.assert_allclose(offsets[0], samples, rtol=1e-6)
    np.testing.assert_allclose(offsets[1][0], mode, rtol=1e-6)
    np.testing.assert_allclose(offsets[2][0], star, rtol=1e-6)
    path = tmp_path / "fig.png"
    plot_hypotheses_2d(image, hyp, joint=9, out=path)
    assert path.stat().st_size > 0
    with pytest.raises(ValueError, match="out of range"):
        plot_hypotheses_2d(image, hyp, joint=17)


def test_crop_camera_matches_full_projection_then_crop():
    gen = torch.Generator().manual_seed(0)
    pts = torch.randn(10, 3, generator=gen, dtype=torch.float64) * 0.3 + torch.tensor([0.1, 0, 4.0],
                                                                                       dtype=torch.float64)
    focal = torch.tensor([1100.0, 1000.0], dtype=torch.float64)
    hw = torch.tensor([480.0, 640.0], dtype=torch.float64)
    center = torch.tensor([400.0, 200.0], dtype=torch.float64)
    b, R = 150.0, 96
    full = perspective_project(pts, focal, hw.flip(-1) / 2)
    expected = (full_to_crop(full, center, torch.tensor(b, dtype=torch.float64)) + 1) / 2 * R
    f_crop, c_crop = crop_camera(focal, center, b, hw, R)
    got = perspective_project(pts, torch.from_numpy(f_crop), torch.from_numpy(c_crop))
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-10)


def test_side_view_turns_about_the_vertical_axis():
    pivot = np.array([0.0, 0.0, 3.0])
    v = np.array([[1.0, 0.5, 3.0], [0.0, -0.2, 4.0]])
    turned = side_view(v, pivot)
    np.testing.assert_allclose(turned[:, 1], v[:, 1])                      # heights kept
    np.testing.assert_allclose(np.linalg.norm(turned - pivot, axis=1),
                               np.linalg.norm(v - pivot, axis=1))          # distances kept
    np.testing.assert_allclose(turned[0], [0.0, 0.5, 2.0], atol=1e-12)     # +x -> -z


def test_vertex_spread_and_colours_against_a_loop():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(7, 5, 3))
    ref = [np.sqrt(np.mean([np.sum((v[s, i] - v[:, i].mean(0)) ** 2) for s in range(7)]))
           for i in range(5)]
    np.testing.assert_allclose(vertex_spread(v), ref)
    colors, _spread, top = uncertainty_colors(v, vmax=2 * max(ref), cmap="gray")
    np.testing.assert_allclose(colors[:, 0], np.array(ref) / (2 * max(ref)), atol=1 / 255)
    assert top == 2 * max(ref)
    with pytest.raises(ValueError, match="S >= 2"):
        vertex_spread(v[:1])


def test_render_hypotheses_lays_out_views_and_turns_to_the_side():
    from humr.viz.mesh import render_hypotheses

    square = np.array([[-1.0, -1, 5], [1, -1, 5], [1, 1, 5], [-1, 1, 5]])
    faces = np.array([[0, 2, 1], [0, 3, 2]])                # facing the camera
    verts = np.stack([square, square + [1.0, 0.0, 0.0]])   # hypothesis 1 shifted right
    grid = render_hypotheses(verts, faces, (20.0, 20.0), (16.0, 16.0), (32, 32),
                             colors=[(1.0, 0.0, 0.0), (0.0, 0.0, 1.0)])
    assert grid.shape == (64, 64, 3)
    painted = (grid != 255).any(-1)
    front0, front1 = painted[:32, :32], painted[:32, 32:]
    assert front0.sum() == front1.sum() == 64                # 8 x 8 px square (pixel centres)
    cols0, cols1 = np.nonzero(front0.any(0))[0], np.nonzero(front1.any(0))[0]
    assert cols1.min() - cols0.min() == 4                   # 1 m at 5 m depth, f = 20 px
    assert grid[16, 16, 0] > grid[16, 16, 2] and grid[16, 52, 2] > grid[16, 52, 0]
    # turned by 90 degrees about the vertical axis the square is seen edge-on
    assert painted[32:].sum() < 0.2 * painted[:32].sum()
    with pytest.raises(ValueError, match="unknown views"):
        render_hypotheses(verts, faces, (20.0, 20.0), (16.0, 16.0), (32, 32), views=("top",))
