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
"""
from __future__ import annotations

import torch

__all__ = ["splat_sums", "softmax_splat", "average_splat"]


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
