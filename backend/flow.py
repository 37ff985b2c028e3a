"""Dense classical optical flow from a start frame to every following frame (DESIGN.md "Motion from video").

The paper found deep flow over-smooths thin moving structures; coarse-to-fine classical flow keeps them. Two
OpenCV methods are offered; ``scripts/eval_extract.py`` measures which is more accurate on synthetic scenes with
exact ground truth. Output layout: trajectories (T, 2, H, W) float32, displacement in pixels of every pixel of the
start frame at frames 0..T-1 (x right, y down), frame 0 all zeros.
"""
from __future__ import annotations

import dataclasses
import logging

import cv2
import numpy as np
from tqdm import tqdm

log = logging.getLogger(__name__)

METHODS = ("dis", "farneback")


@dataclasses.dataclass(frozen=True)
class FlowConfig:
    method: str = "dis"
    # DIS (Kroeger et al. 2016) with variational refinement; values tuned on the synthetic scenes.
    dis_preset: int = cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
    dis_patch_size: int = 4
    dis_patch_stride: int = 2
    dis_finest_scale: int = 0
    dis_gd_iterations: int = 25
    dis_var_iterations: int = 5
    dis_var_alpha: float = 20.0
    dis_var_delta: float = 5.0
    dis_var_gamma: float = 10.0
    # Start the flow to frame t from the flow to frame t-1 (motion is continuous in time).
    warm_start: bool = True
    # Farnebäck (2003) polynomial expansion, 5-level pyramid.
    fb_levels: int = 5
    fb_winsize: int = 15
    fb_iterations: int = 5
    fb_poly_n: int = 5
    fb_poly_sigma: float = 1.1

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"unknown flow method '{self.method}' (choose one of: {', '.join(METHODS)})")


def sample_at(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``image`` (H, W[, C]) float32 sampled at p + flow(p) (flow (2, H, W) px; bilinear, border replicated)."""
    h, w = flow.shape[-2:]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return cv2.remap(np.ascontiguousarray(image, dtype=np.float32), xx + flow[0], yy + flow[1], cv2.INTER_LINEAR,
                     borderMode=cv2.BORDER_REPLICATE)


def _gray(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return np.ascontiguousarray(frame)
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


class FlowEstimator:
    """Flow from one fixed reference frame to a sequence of target frames."""

    def __init__(self, config: FlowConfig = FlowConfig()):
        self.config = config
        if config.method == "dis":
            dis = cv2.DISOpticalFlow_create(config.dis_preset)
            dis.setPatchSize(config.dis_patch_size)
            dis.setPatchStride(config.dis_patch_stride)
            dis.setFinestScale(config.dis_finest_scale)
            dis.setGradientDescentIterations(config.dis_gd_iterations)
            dis.setVariationalRefinementIterations(config.dis_var_iterations)
            dis.setVariationalRefinementAlpha(config.dis_var_alpha)
            dis.setVariationalRefinementDelta(config.dis_var_delta)
            dis.setVariationalRefinementGamma(config.dis_var_gamma)
            dis.setUseMeanNormalization(True)
            dis.setUseSpatialPropagation(True)
            self._dis = dis

    def __call__(self, ref: np.ndarray, tgt: np.ndarray, init: np.ndarray | None = None) -> np.ndarray:
        """Flow (H, W, 2) float32 such that ref(p) ~ tgt(p + flow(p))."""
        c = self.config
        if c.method == "dis":
            if init is not None and c.warm_start:
                flow = np.ascontiguousarray(init, dtype=np.float32).copy()
                return self._dis.calc(ref, tgt, flow)
            return self._dis.calc(ref, tgt, None)
        flags = cv2.OPTFLOW_USE_INITIAL_FLOW if (init is not None and c.warm_start) else 0
        flow = np.ascontiguousarray(init, dtype=np.float32).copy() if flags else None
        return cv2.calcOpticalFlowFarneback(ref, tgt, flow, 0.5, c.fb_levels, c.fb_winsize, c.fb_iterations,
                                            c.fb_poly_n, c.fb_poly_sigma, flags)


def compute_trajectories(frames: np.ndarray, config: FlowConfig = FlowConfig(), progress: bool = False,
                         desc: str = "flow") -> np.ndarray:
    """frames (T, H, W, 3) uint8 RGB (or (T, H, W) gray) -> trajectories (T, 2, H, W) float32 from frame 0."""
    if frames.ndim not in (3, 4) or frames.shape[0] < 2:
        raise ValueError(f"need at least 2 frames of shape (T, H, W[, 3]), got {frames.shape}")
    estimator = FlowEstimator(config)
    t, h, w = frames.shape[:3]
    traj = np.zeros((t, 2, h, w), np.float32)
    ref = _gray(frames[0])
    flow = None
    for i in tqdm(range(1, t), desc=desc, unit="frame", disable=not progress, leave=False):
        flow = estimator(ref, _gray(frames[i]), flow)
        traj[i] = flow.transpose(2, 0, 1)
    return traj


# ------------------------------------------------------------------------------------------------ trust
@dataclasses.dataclass(frozen=True)
class TrustConfig:
    """Where dense flow can be believed (DIS invents large motion in clear sky and black backgrounds).

    Three factors in [0, 1], multiplied: local contrast of frame 0 (standard deviation of grey over a
    ``window`` x ``window`` box, 0 at ``contrast_floor``, 1 at twice it; 0..255 units), brightness (0 at
    ``dark_floor``, 1 at twice it) and forward-backward consistency (the flow back from frame t, sampled where the
    forward flow lands, must cancel it within ``fb_px`` + ``fb_rel`` x |F| at a share of the checked frames: 0 at
    half, 1 at ``fb_full``), checked every ``check_every`` frames."""
    window: int = 7
    contrast_floor: float = 3.0
    dark_floor: float = 12.0
    check_every: int = 10
    fb_px: float = 0.5
    fb_rel: float = 0.1
    fb_full: float = 0.9


def contrast_and_brightness(frame: np.ndarray, cfg: TrustConfig = TrustConfig()) -> np.ndarray:
    """Trust (H, W) float32 in [0, 1] of frame 0 alone: local contrast times brightness."""
    g = _gray(frame).astype(np.float32)
    box = (cfg.window, cfg.window)
    mean = cv2.blur(g, box)
    std = np.sqrt(np.maximum(cv2.blur(g * g, box) - mean * mean, 0.0))
    contrast = np.clip(std / cfg.contrast_floor - 1.0, 0.0, 1.0)
    bright = np.clip(mean / cfg.dark_floor - 1.0, 0.0, 1.0)
    return (contrast * bright).astype(np.float32)


def forward_backward_consistency(frames: np.ndarray, traj: np.ndarray, flow: FlowConfig = FlowConfig(),
                                 cfg: TrustConfig = TrustConfig()) -> np.ndarray:
    """Share (H, W) float32 of checked frames t (every ``check_every``-th) at which the backward flow t -> 0
    cancels the forward trajectory F_t: |F_t(p) + B_t(p + F_t(p))| <= fb_px + fb_rel * |F_t(p)|."""
    estimator = FlowEstimator(flow)
    ref = _gray(frames[0])
    checks = list(range(cfg.check_every, frames.shape[0], cfg.check_every)) or [frames.shape[0] - 1]
    ok = np.zeros(traj.shape[2:], np.float32)
    for t in checks:
        fwd = traj[t]
        back = estimator(_gray(frames[t]), ref, -fwd.transpose(1, 2, 0))  # (H, W, 2), warm-started at -F_t
        landed = sample_at(back, fwd)  # B_t(p + F_t(p)), (H, W, 2)
        err = np.sqrt(((fwd.transpose(1, 2, 0) + landed) ** 2).sum(axis=2))
        ok += err <= cfg.fb_px + cfg.fb_rel * np.sqrt((fwd ** 2).sum(axis=0))
    return ok / len(checks)


def flow_trust(frames: np.ndarray, traj: np.ndarray, flow: FlowConfig = FlowConfig(),
               cfg: TrustConfig = TrustConfig()) -> np.ndarray:
    """Per-pixel confidence (H, W) float32 in [0, 1] of trajectories ``traj`` (T, 2, H, W) from ``frames``."""
    share = forward_backward_consistency(frames, traj, flow, cfg)
    fb = np.clip((share - 0.5) / (cfg.fb_full - 0.5), 0.0, 1.0)
    return (contrast_and_brightness(frames[0], cfg) * fb).astype(np.float32)
