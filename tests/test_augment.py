"""Augmentations keep photo and motion consistent: warping the augmented photo by the augmented motion equals
augmenting the warped photo (for flip, zoom/crop and rotation, each alone and combined)."""
import cv2
import numpy as np
import pytest

from addon.core.spectral import displacement_at, frequencies
from backend.data.augment import (Augment, AugmentConfig, Geometry, apply_geometry, colour_jitter, min_zoom,
                                  random_geometry, transform_coeffs)

W, H = 64, 40


def _smooth_image(seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    img = np.zeros((3, H, W))
    for c in range(3):
        for _ in range(3):
            fx, fy, ph = rng.uniform(0.01, 0.05), rng.uniform(0.01, 0.05), rng.uniform(0, 6)
            img[c] += 0.15 * np.sin(2 * np.pi * (fx * xx + fy * yy) + ph)
    return (0.5 + img).astype(np.float32)


def _smooth_flow(seed=1, amp=2.5):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    fx, fy = rng.uniform(0.01, 0.04, 2), rng.uniform(0.01, 0.04, 2)
    return np.stack([amp * np.sin(2 * np.pi * (fx[0] * xx + fy[0] * yy) + 1.0),
                     0.6 * amp * np.cos(2 * np.pi * (fx[1] * xx + fy[1] * yy))]).astype(np.float32)


def _backward_warp(img, flow):
    """out(q) = img(q + flow(q)) (frame t seen from frame 0's pixels, as in the synthetic tests)."""
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    mx, my = xx + flow[0], yy + flow[1]
    return np.stack([cv2.remap(c, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) for c in img])


GEOMETRIES = {
    "flip": Geometry.make(W, H, flip=True),
    "zoom_crop": Geometry.make(W, H, scale=1.3, offset=(3.0, -2.0)),
    "rotation": Geometry.make(W, H, angle_deg=4.0, scale=min_zoom(W, H, 4.0)),
    "all": Geometry.make(W, H, flip=True, angle_deg=-3.0, scale=1.2, offset=(-1.5, 1.0)),
}


@pytest.mark.parametrize("name", list(GEOMETRIES))
def test_warp_of_augmented_equals_augmented_warp(name):
    g = GEOMETRIES[name]
    img, flow = _smooth_image(), _smooth_flow()
    aug = apply_geometry({"photo": img, "flow": flow}, g)
    lhs = _backward_warp(aug["photo"], aug["flow"])
    rhs = apply_geometry({"photo": _backward_warp(img, flow)}, g)["photo"]
    inner = (slice(None), slice(6, -6), slice(6, -6))
    err = np.abs(lhs - rhs)[inner]
    assert err.mean() < 2e-3 and err.max() < 2e-2, (err.mean(), err.max())  # bilinear resampling error
    # and the motion really changed where it should (the check is not vacuous)
    assert np.abs(_backward_warp(aug["photo"], flow) - rhs)[inner].mean() > 10 * err.mean()


def test_flip_negates_x_and_mirrors():
    flow = _smooth_flow()
    out = apply_geometry({"flow": flow, "weight": (flow ** 2).sum(0)}, GEOMETRIES["flip"])
    np.testing.assert_allclose(out["flow"][0], -flow[0][:, ::-1], atol=1e-5)
    np.testing.assert_allclose(out["flow"][1], flow[1][:, ::-1], atol=1e-5)
    np.testing.assert_allclose(out["weight"], (flow ** 2).sum(0)[:, ::-1], rtol=1e-5, atol=1e-5)


def test_zoom_scales_motion_and_weight():
    flow = np.ones((2, H, W), np.float32) * np.array([1.5, -0.5], np.float32).reshape(2, 1, 1)
    out = apply_geometry({"flow": flow, "weight": (flow ** 2).sum(0)}, Geometry.make(W, H, scale=1.4))
    np.testing.assert_allclose(out["flow"][:, 5, 5], [2.1, -0.7], rtol=1e-5)
    np.testing.assert_allclose(out["weight"], 1.4 ** 2 * 2.5, rtol=1e-5)


def test_rotation_rotates_vectors():
    flow = np.zeros((2, H, W), np.float32)
    flow[0] = 2.0  # uniform motion to the right
    g = Geometry.make(W, H, angle_deg=30.0, scale=1.0)
    out = apply_geometry({"flow": flow}, g)["flow"]
    a = np.radians(30.0)
    np.testing.assert_allclose(out[:, 20, 30], [2 * np.cos(a), 2 * np.sin(a)], atol=1e-5)  # y down: clockwise


def test_coefficients_transform_like_their_displacements():
    """A spectral volume augmented = the displacement at any time augmented (Re/Im parts are vectors)."""
    rng = np.random.default_rng(3)
    k = 4
    coeffs = np.stack([np.concatenate([_smooth_flow(seed=i, amp=1.0)[:1], _smooth_flow(seed=i + 10, amp=1.0)[:1],
                                       _smooth_flow(seed=i, amp=1.0)[1:], _smooth_flow(seed=i + 20)[1:]])
                       for i in range(k)]).astype(np.float32)
    g = random_geometry(rng, W, H, AugmentConfig(flip_prob=1.0))
    out = apply_geometry({"coeffs": coeffs}, g)["coeffs"]
    freqs = frequencies(k, 30.0, 150)
    for t in (0.0, 0.37, 1.9):
        want = apply_geometry({"flow": displacement_at(coeffs, freqs, t)}, g)["flow"]
        np.testing.assert_allclose(displacement_at(out, freqs, t), want, atol=1e-4)
    np.testing.assert_allclose(transform_coeffs(coeffs, np.eye(2)), coeffs)


def test_random_geometry_keeps_crop_inside_and_is_seeded():
    cfg = AugmentConfig(max_rotate_deg=5.0)
    for seed in range(20):
        g = random_geometry(np.random.default_rng(seed), W, H, cfg)
        m = g.inverse_matrix(W, H)
        corners = np.array([[0, 0, 1], [W - 1, 0, 1], [0, H - 1, 1], [W - 1, H - 1, 1]], float)
        p = corners @ m.T
        assert np.all(p[:, 0] >= -0.5 - 1e-6) and np.all(p[:, 0] <= W - 0.5 + 1e-6)
        assert np.all(p[:, 1] >= -0.5 - 1e-6) and np.all(p[:, 1] <= H - 0.5 + 1e-6)
    a = random_geometry(np.random.default_rng(7), W, H, cfg)
    b = random_geometry(np.random.default_rng(7), W, H, cfg)
    np.testing.assert_array_equal(a.L, b.L)


def test_colour_jitter_touches_images_only_and_the_same_way():
    img = _smooth_image()
    flow = _smooth_flow()
    out = colour_jitter({"i0": img, "it": img.copy(), "flow": flow}, np.random.default_rng(0), AugmentConfig())
    assert out["flow"] is flow
    np.testing.assert_array_equal(out["i0"], out["it"])
    assert np.abs(out["i0"] - img).mean() > 1e-3 and out["i0"].min() >= 0 and out["i0"].max() <= 1


def test_augment_callable_on_a_render_pair():
    img, flow = _smooth_image(), _smooth_flow()
    sample = {"i0": img, "it": _backward_warp(img, -flow), "flow": flow, "weight": (flow ** 2).sum(0), "t": 5}
    out = Augment()(sample, np.random.default_rng(1))
    assert out["t"] == 5 and out["i0"].shape == (3, H, W) and out["flow"].shape == (2, H, W)
    with pytest.raises(ValueError, match="zoom"):
        Augment(AugmentConfig(zoom=(0.5, 1.0)))
