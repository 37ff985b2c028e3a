"""Softmax splatting (backend/splat.py): exact warps, bilinear mass split, z-order by metric, gradients."""
import math

import numpy as np
import pytest
import torch

from backend.splat import average_splat, fill_holes, motion_metric, softmax_splat, splat_sums


def _flow(b, h, w, dx, dy, dtype=torch.float32):
    f = torch.zeros(b, 2, h, w, dtype=dtype)
    f[:, 0] = dx
    f[:, 1] = dy
    return f


def test_zero_flow_is_identity():
    torch.manual_seed(0)
    src = torch.rand(2, 3, 9, 11)
    metric = torch.randn(2, 1, 9, 11) * 5
    out, coverage = softmax_splat(src, torch.zeros(2, 2, 9, 11), metric, return_coverage=True)
    assert (out - src).abs().max().item() < 1e-6
    assert torch.equal(coverage, torch.ones_like(coverage))
    assert torch.equal(average_splat(src, torch.zeros(2, 2, 9, 11)), src)


def test_integer_shift_moves_exactly_and_leaves_a_hole():
    torch.manual_seed(1)
    src = torch.rand(1, 3, 8, 10) + 0.5  # strictly positive, so zeros can only come from holes
    out, coverage = softmax_splat(src, _flow(1, 8, 10, 2.0, 1.0), torch.rand(1, 1, 8, 10),
                                  return_coverage=True)
    assert torch.allclose(out[:, :, 1:, 2:], src[:, :, :-1, :-2], atol=1e-6)
    assert torch.equal(out[:, :, :1, :], torch.zeros(1, 3, 1, 10))  # vacated top row
    assert torch.equal(out[:, :, :, :2], torch.zeros(1, 3, 8, 2))  # vacated left columns
    assert torch.equal(coverage[:, :, :1, :], torch.zeros(1, 1, 1, 10))
    assert torch.equal(coverage[:, :, :, :2], torch.zeros(1, 1, 8, 2))
    assert torch.equal(coverage[:, :, 1:, 2:], torch.ones(1, 1, 7, 8))


def test_negative_shift_drops_mass_outside():
    src = torch.arange(12, dtype=torch.float32).view(1, 1, 3, 4)
    out = average_splat(src, _flow(1, 3, 4, -1.0, 0.0))
    assert torch.equal(out[0, 0, :, :3], src[0, 0, :, 1:])
    assert torch.equal(out[0, 0, :, 3], torch.zeros(3))


def test_half_pixel_shift_splits_mass_bilinearly():
    src = torch.zeros(1, 1, 5, 5)
    src[0, 0, 2, 2] = 1.0
    sums = splat_sums(src, _flow(1, 5, 5, 0.5, 0.0))
    assert sums[0, 0, 2, 2].item() == 0.5 and sums[0, 0, 2, 3].item() == 0.5
    assert sums.sum().item() == 1.0
    sums = splat_sums(src, _flow(1, 5, 5, 0.5, -0.5))
    for y, x in ((1, 2), (1, 3), (2, 2), (2, 3)):
        assert sums[0, 0, y, x].item() == 0.25
    assert sums.sum().item() == 1.0
    # A uniform half-pixel shift of a whole image is the average of the two integer shifts (interior).
    torch.manual_seed(2)
    img = torch.rand(1, 2, 6, 9)
    out = average_splat(img, _flow(1, 6, 9, 0.5, 0.0))
    expected = 0.5 * (img[..., 1:-1] + img[..., :-2])  # target x gets sources x-1 and x
    assert torch.allclose(out[..., 1:-1], expected, atol=1e-6)


def _collision(metric_a, metric_b):
    """Sources at x=0 (value 1) and x=2 (value 0) both land on x=1; x=1 moves away to x=3."""
    src = torch.tensor([[[[1.0, 0.5, 0.0, 0.25]]]])
    flow = torch.zeros(1, 2, 1, 4)
    flow[0, 0] = torch.tensor([1.0, 2.0, -1.0, 0.0])
    metric = torch.tensor([[[[metric_a, 0.0, metric_b, 0.0]]]])
    return softmax_splat(src, flow, metric, return_coverage=True)


def test_larger_metric_dominates_where_sources_collide():
    out, coverage = _collision(10.0, 0.0)
    assert out[0, 0, 0, 1].item() > 0.9999
    assert math.isclose(out[0, 0, 0, 1].item(), math.exp(10) / (math.exp(10) + 1), rel_tol=1e-6)
    assert coverage[0, 0, 0, 1].item() == 2.0  # two sources landed there, whatever their metric
    out, _ = _collision(0.0, 10.0)
    assert out[0, 0, 0, 1].item() < 1e-4
    out, _ = _collision(3.0, 3.0)
    assert out[0, 0, 0, 1].item() == pytest.approx(0.5, abs=1e-7)
    assert out[0, 0, 0, 0].item() == 0.0  # x=0 is vacated


def test_huge_metrics_are_stable():
    torch.manual_seed(3)
    src = torch.rand(2, 3, 6, 7)
    flow = torch.randn(2, 2, 6, 7)
    metric = torch.rand(2, 1, 6, 7) * 20
    ref = softmax_splat(src, flow, metric)
    shifted = softmax_splat(src, flow, metric + torch.tensor([1000.0, -1000.0]).view(2, 1, 1, 1))
    assert torch.isfinite(shifted).all()
    assert torch.allclose(ref, shifted, atol=1e-5)


def test_batch_items_are_independent_and_deterministic():
    torch.manual_seed(4)
    src = torch.rand(3, 4, 12, 10)
    flow = torch.randn(3, 2, 12, 10) * 2
    metric = torch.rand(3, 1, 12, 10) * 20
    metric[1] += 50  # a per-image offset must not change anything
    batch = softmax_splat(src, flow, metric)
    for i in range(3):
        single = softmax_splat(src[i:i + 1], flow[i:i + 1], metric[i:i + 1])
        assert torch.allclose(batch[i:i + 1], single, atol=1e-6)
    assert torch.equal(batch, softmax_splat(src, flow, metric))


def test_gradients_reach_src_flow_and_metric():
    torch.manual_seed(5)
    src = torch.rand(1, 2, 4, 5, dtype=torch.float64, requires_grad=True)
    # Fractional flow away from integer boundaries (the bilinear weights have kinks at integers).
    flow = (torch.randint(-1, 2, (1, 2, 4, 5)) + 0.2 + 0.6 * torch.rand(1, 2, 4, 5)).double().requires_grad_()
    metric = torch.rand(1, 1, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s, f, m: softmax_splat(s, f, m), (src, flow, metric))
    assert torch.autograd.gradcheck(lambda s, f: average_splat(s, f, return_coverage=True), (src, flow))


def test_many_channels_match_channel_by_channel():
    torch.manual_seed(6)
    src = torch.rand(2, 64, 10, 12)
    flow = torch.randn(2, 2, 10, 12) * 3
    metric = torch.rand(2, 1, 10, 12) * 20
    out = softmax_splat(src, flow, metric)
    assert out.shape == (2, 64, 10, 12)
    for c in (0, 17, 63):
        assert torch.allclose(out[:, c:c + 1], softmax_splat(src[:, c:c + 1], flow, metric), atol=1e-6)


def test_bad_shapes_are_refused():
    src = torch.rand(1, 3, 4, 5)
    with pytest.raises(ValueError, match="flow must have shape"):
        softmax_splat(src, torch.zeros(1, 2, 5, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ValueError, match="metric must have shape"):
        softmax_splat(src, torch.zeros(1, 2, 4, 5), torch.zeros(1, 4, 5))
    with pytest.raises(ValueError, match="src must have shape"):
        average_splat(src[0], torch.zeros(1, 2, 4, 5))


# --- who is in front, and the holes ----------------------------------------------------------------------------

def test_metric_is_rescaled_rms_motion_over_the_loop():
    from backend.preview import demo_inputs
    from backend.spectral import mean_square_displacement

    _img, vol = demo_inputs(40, 24, k=6, num_frames=30, amplitude=2.0, seed=4)
    vol.coeffs[0] = 0.3  # a constant offset counts as motion too (mean over t of ||F_t||^2)
    traj = vol.trajectories()  # (T, 2, H, W)
    rms = np.sqrt((traj.astype(np.float64) ** 2).sum(axis=1).mean(axis=0))
    power = mean_square_displacement(torch.from_numpy(vol.coeffs))[None, None]
    metric = motion_metric(power, 20.0, 1e-6)[0, 0].numpy()
    assert np.abs(metric - 20 * rms / rms.max()).max() < 1e-4
    assert metric.max() == pytest.approx(20, abs=1e-4)
    weight = torch.tensor([[[[0.0, 1.0], [4.0, 16.0]]]])  # px²: RMS 0, 1, 2, 4
    assert torch.allclose(motion_metric(weight, 20.0, 1.0), torch.tensor([[[[0.0, 5.0], [10.0, 20.0]]]]))
    # Sub-pixel motion (peak RMS 0.5 px) is not stretched to the full range: the peak counts as min_motion_px.
    assert torch.allclose(motion_metric(weight / 64.0, 20.0, 1.0), torch.tensor([[[[0.0, 2.5], [5.0, 10.0]]]]))
    assert torch.equal(motion_metric(torch.zeros(1, 1, 2, 2), 20.0, 1e-6), torch.zeros(1, 1, 2, 2))


def test_fill_holes_keeps_covered_pixels_and_fills_holes_from_neighbours():
    img = torch.full((1, 3, 8, 8), 100.0)
    img[..., :, 4:] = 200.0
    coverage = torch.ones(1, 1, 8, 8)
    coverage[..., 3, 1] = 0.0  # hole inside the 100 region
    coverage[..., 2:4, 6] = 0.0  # hole inside the 200 region
    holed = img * (coverage > 0)
    out = fill_holes(holed, coverage)
    keep = coverage >= 0.5
    assert torch.equal(out[keep.expand_as(out)], holed[keep.expand_as(out)])
    assert abs(out[0, 0, 3, 1].item() - 100) < 15
    assert abs(out[0, 0, 2, 6].item() - 200) < 15


def test_cracks_inside_a_moving_part_take_its_colour_not_the_background():
    """A one-pixel crack (a stretched part pulling apart) is filled from its neighbours, not from behind."""
    image = torch.zeros(1, 3, 32, 32)
    image[:, :, 8:24, 8:24] = 255.0  # a bright moving square on a dark, still background
    metric = torch.zeros(1, 1, 32, 32)
    metric[:, :, 8:24, 8:24] = 20.0
    coverage = torch.ones(1, 1, 32, 32)
    coverage[:, :, 8:24, 16] = 0.0  # the crack
    image[:, :, :, 16] = 0.0
    out = fill_holes(image, coverage, metric * coverage)
    assert out[0, :, 9:23, 16].min() > 250.0
    # a wide hole (a disocclusion) still prefers the background behind the moving part
    coverage[:, :, 8:24, 12:21] = 0.0
    image[:, :, 8:24, 12:21] = 0.0
    out = fill_holes(image, coverage, metric * coverage)
    assert out[0, :, 16, 16].max() < 128.0
