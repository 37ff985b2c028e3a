"""Forward warping by softmax splatting (Niklaus & Liu, CVPR 2020) in pure torch.

Every source pixel ``p`` (centre at integer ``(x, y)``) is moved to ``p + flow(p)`` and its value is spread
bilinearly over the four target pixels around that point. Where several sources land on the same target, a
per-source ``metric`` decides who wins (a soft z-buffer)::

    out(q) = sum_p exp(metric_p) w_pq src_p / sum_p exp(metric_p) w_pq

``w_pq`` is the bilinear weight of source ``p`` at target ``q``. Targets nothing lands on (disocclusions,
vacated borders) are holes: value 0 and zero coverage.

Runs on CPU and CUDA with ordinary tensor ops (``index_add_``), so it is differentiable with respect to ``src``,
``flow`` and ``metric`` and works for any channel count (images or feature maps). On CPU the result is
bit-deterministic; on CUDA ``index_add_`` accumulates with atomics unless
``torch.use_deterministic_algorithms(True)`` is set.

Layouts: ``src`` (B, C, H, W); ``flow`` (B, 2, H, W) in pixels, channel 0 = x (right), channel 1 = y (down);
``metric`` (B, 1, H, W). Outputs are (B, C, H, W), plus (B, 1, H, W) coverage when asked for.

Around the splat, what every user of it needs (the preview, the neural renderer, the evaluation):

* **Who is in front** (:func:`motion_metric`): DESIGN.md's motion magnitude ``W(p) = mean_t ||F_t(p)||^2`` over the
  volume's loop (``backend.spectral.mean_square_displacement``; big motion = in front), as the rescaled RMS
  motion ``metric_range * sqrt(W) / max sqrt(W)``. RMS (not W) keeps slow parts ordered too (in [0, 20] a part
  moving at a quarter of the peak still gets metric 5, i.e. 148x the weight of the static background), and the
  fixed range keeps exp() far from float32 underflow for any image scale.
* **Holes** (:func:`fill_holes`): disocclusions and vacated borders get the colour of what lies behind.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["splat_sums", "softmax_splat", "average_splat", "motion_metric", "fill_holes", "FILL_CONFIDENCE"]

FILL_CONFIDENCE = 0.5  # coverage at or above which a splatted pixel is kept as is
BACKGROUND_BIAS = 0.5  # hole fill: a pixel with metric 20 weighs e^-10 of a static one
CRACK_COVERAGE = 0.6  # mean coverage of a 3x3 neighbourhood above which a hole is a crack, not a disocclusion


def _check(src: torch.Tensor, flow: torch.Tensor, metric: torch.Tensor | None) -> None:
    if src.ndim != 4:
        raise ValueError(f"src must have shape (B, C, H, W), got {tuple(src.shape)}")
    b, _, h, w = src.shape
    if flow.shape != (b, 2, h, w):
        raise ValueError(f"flow must have shape {(b, 2, h, w)} (x right, y down, pixels), got {tuple(flow.shape)}")
    if metric is not None and metric.shape != (b, 1, h, w):
        raise ValueError(f"metric must have shape {(b, 1, h, w)}, got {tuple(metric.shape)}")
    if not (src.is_floating_point() and flow.is_floating_point()):
        raise TypeError("src and flow must be floating-point tensors")
    if src.device != flow.device:
        raise ValueError(f"src is on {src.device} but flow is on {flow.device}")


def splat_sums(values: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Bilinear forward splat of ``values`` (B, C, H, W) along ``flow`` (B, 2, H, W); returns the raw sums.

    ``out(q) = sum_p w_pq values_p`` with no normalisation; mass landing outside the image is dropped. This is
    the building block of the normalised splats below (which put the weights in an extra channel).
    """
    _check(values, flow, None)
    b, c, h, w = values.shape
    dtype = values.dtype
    flow = flow.to(dtype)
    ys = torch.arange(h, device=values.device, dtype=dtype).view(1, h, 1)
    xs = torch.arange(w, device=values.device, dtype=dtype).view(1, 1, w)
    tx = xs + flow[:, 0]  # (B, H, W) target position, pixel units
    ty = ys + flow[:, 1]
    x0f = torch.floor(tx).detach()
    y0f = torch.floor(ty).detach()
    ax = tx - x0f  # fractional part carries the gradient to the flow
    ay = ty - y0f
    x0 = x0f.long()
    y0 = y0f.long()

    # Sources as rows: (B*H*W, C). index_add_ over rows is one pass per corner.
    rows = values.permute(0, 2, 3, 1).reshape(b * h * w, c)
    out = values.new_zeros(b * h * w, c)
    base = (torch.arange(b, device=values.device) * (h * w)).view(b, 1, 1)
    corners = (
        (x0, y0, (1.0 - ax) * (1.0 - ay)),
        (x0 + 1, y0, ax * (1.0 - ay)),
        (x0, y0 + 1, (1.0 - ax) * ay),
        (x0 + 1, y0 + 1, ax * ay),
    )
    for cx, cy, weight in corners:
        inside = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)
        if not bool(inside.any()):
            continue
        index = (base + cy.clamp(0, h - 1) * w + cx.clamp(0, w - 1)).reshape(-1)
        weight = torch.where(inside, weight, torch.zeros((), dtype=dtype, device=values.device)).reshape(-1, 1)
        out.index_add_(0, index, rows * weight)
    return out.view(b, h, w, c).permute(0, 3, 1, 2)


def _normalised_splat(src, flow, weight, return_coverage):
    """Splat [src * weight, weight (, 1)] together and divide. ``weight`` (B, 1, H, W) is positive or None."""
    b, c, h, w = src.shape
    parts = [src * weight, weight] if weight is not None else [src, torch.ones_like(src[:, :1])]
    extra_coverage = return_coverage and weight is not None
    if extra_coverage:
        parts.append(torch.ones_like(src[:, :1]))
    sums = splat_sums(torch.cat(parts, dim=1), flow)
    num, den = sums[:, :c], sums[:, c:c + 1]
    # Holes have den == 0 exactly (and num == 0): divide by 1 there so the output is 0 and gradients stay finite.
    safe = torch.where(den > 0, den, torch.ones((), dtype=den.dtype, device=den.device))
    out = num / safe
    if not return_coverage:
        return out
    coverage = sums[:, c + 1:c + 2] if extra_coverage else den
    return out, coverage


def softmax_splat(src: torch.Tensor, flow: torch.Tensor, metric: torch.Tensor, *,
                  return_coverage: bool = False):
    """Softmax splatting: forward-warp ``src`` (B, C, H, W) by ``flow`` (B, 2, H, W), sources with larger
    ``metric`` (B, 1, H, W) in front.

    The metric is shifted by its per-image maximum before ``exp`` (the softmax is shift-invariant), so any range
    is safe from overflow; keep the range within about 80 in float32 so that back-most sources do not underflow
    to zero (the preview uses [0, 20]: a difference of 10 already gives the front source > 0.9999 of the weight).

    Returns the warped tensor (B, C, H, W), zero in holes. With ``return_coverage=True`` also returns the
    bilinear coverage (B, 1, H, W) = sum_p w_pq, independent of the metric: about 1 where the image is covered
    once, 0 exactly in holes, between 0 and 1 where sources spread apart.
    """
    _check(src, flow, metric)
    metric = metric.to(src.dtype)
    shifted = metric - metric.amax(dim=(1, 2, 3), keepdim=True).detach()
    return _normalised_splat(src, flow, torch.exp(shifted), return_coverage)


def average_splat(src: torch.Tensor, flow: torch.Tensor, *, return_coverage: bool = False):
    """Softmax splatting with a constant metric: where sources overlap they are averaged (bilinear weights)."""
    _check(src, flow, None)
    return _normalised_splat(src, flow, None, return_coverage)


def motion_metric(weight: torch.Tensor, metric_range: float, min_motion_px: float,
                  gain: torch.Tensor | float = 1.0) -> torch.Tensor:
    """W (B, 1, H, W) in px² -> splat metric (B, 1, H, W) in [0, gain * metric_range]: the rescaled RMS motion
    ``gain * metric_range * sqrt(W) / max(max sqrt(W), min_motion_px)`` per image; 0 where nothing moves."""
    if weight.ndim != 4 or weight.shape[1] != 1:
        raise ValueError(f"weight must have shape (B, 1, H, W), got {tuple(weight.shape)}")
    rms = weight.clamp_min(0.0).sqrt()
    peak = rms.amax(dim=(1, 2, 3), keepdim=True).clamp_min(min_motion_px)
    return gain * metric_range * rms / peak


def fill_holes(image: torch.Tensor, coverage: torch.Tensor, metric: torch.Tensor | None = None, *,
               confidence: float = FILL_CONFIDENCE, background_bias: float = BACKGROUND_BIAS) -> torch.Tensor:
    """Push-pull fill of a splat's holes. image (B, C, H, W), coverage (B, 1, H, W) >= 0 (0 = hole) -> (B, C, H, W).

    Pixels with coverage >= ``confidence`` are returned unchanged; holes get the average colour of the finest
    pyramid level around them that has enough coverage (the splat result, weighted by its coverage, is averaged
    down an image pyramid); partial coverage blends linearly. With the splatted ``metric`` (B, 1, H, W) the
    average favours background: each pixel's colour weighs ``exp(-background_bias * (metric - min metric))``, and a
    pyramid cell is trusted less when a neighbouring cell lies further back, because what a moving part uncovers
    lies behind it. Chosen over "original pixel at the hole", which re-draws the moving object at its rest position
    (a ghost), and over a plain push-pull, which smears the moving object's colour into the gap it leaves.
    """
    alpha = coverage.clamp(0.0, 1.0)
    if bool((alpha >= confidence).all()):
        return image
    # Cracks first: a hole whose 3x3 neighbourhood is mostly covered (a stretched part pulling its pixels apart)
    # takes its neighbours' plain average, whatever lies behind, so moving parts do not get background specks.
    near = F.avg_pool2d(alpha, 3, stride=1, padding=1, count_include_pad=False)
    crack = (alpha < confidence) & (near >= CRACK_COVERAGE)
    if bool(crack.any()):
        mean = F.avg_pool2d(image * alpha, 3, stride=1, padding=1, count_include_pad=False) / near.clamp_min(1e-30)
        image = torch.where(crack, mean, image)
        alpha = torch.where(crack, torch.ones_like(alpha), alpha)
        if metric is not None:
            metric_mean = F.avg_pool2d(metric * coverage.clamp(0.0, 1.0), 3, stride=1, padding=1,
                                       count_include_pad=False) / near.clamp_min(1e-30)
            metric = torch.where(crack, metric_mean, metric)
    if bool((alpha >= confidence).all()):
        return image
    weight = alpha
    if metric is not None:
        low = metric.amin(dim=(1, 2, 3), keepdim=True)
        weight = alpha * torch.exp(-background_bias * (metric - low))
    levels = [(image * weight, weight, alpha)]
    while min(levels[-1][0].shape[-2:]) > 1:
        levels.append(tuple(F.avg_pool2d(x, 2, ceil_mode=True) for x in levels[-1]))
    v, w, _ = levels[-1]
    filled = v / w.clamp_min(1e-30)  # coarsest level: the mean colour (0 if nothing is covered at all)
    for v, w, a in reversed(levels[:-1]):
        up = F.interpolate(filled, size=v.shape[-2:], mode="bilinear", align_corners=False)
        conf = (a / confidence).clamp(0.0, 1.0)
        if metric is not None:  # trust a cell less when a neighbouring cell is further back
            back = w / a.clamp_min(1e-30)  # mean exp(-bias * metric) of the cell's covered pixels, in [0, 1]
            conf = conf * back / F.max_pool2d(back, 3, stride=1, padding=1).clamp_min(1e-30)
        filled = conf * (v / w.clamp_min(1e-30)) + (1.0 - conf) * up
    keep = alpha >= confidence
    return torch.where(keep, image, filled)
