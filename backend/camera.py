"""Camera motion in a window of trajectories: a robustly fitted global similarity per frame, and its removal.

The paper rejects a window as camera motion when at least 95% of its pixels move more than 1 px. That throws away
clips whose camera drifts a few pixels, shakes a little, or whose whole frame is foliage (most of the real clips we
have). Instead, per frame t, a similarity transform (rotation, uniform scale, translation: 4 degrees of freedom)
is fitted to the trajectories F_t(p) of trusted pixels with RANSAC (OpenCV ``estimateAffinePartial2D``), and its
displacement field G_t(p) = M_t [p; 1] - p is subtracted: what remains is the motion of things relative to the
camera. A fit counts only when it explains a broad part of the frame (its inliers span at least
``min_extent`` of the width and of the height and are at least ``min_inliers`` of the trusted pixels): a swinging
flame or a single branch moving as one is motion to keep, not the camera. The fit must also explain clearly more of the frame than no camera motion at all
(``MIN_GAIN`` more inliers than the identity), so flow noise on a still clip is never "removed". A frame without
such a fit keeps its trajectories as they are (identity).

Shapes: trajectories (T, 2, H, W) float32 in pixels (x right, y down), frame 0 all zeros; pixel centres at integer
coordinates.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

GRID_STEP = 4            # sample every 4th pixel in x and y for the fit
RANSAC_PX = 1.0          # inlier threshold
MIN_INLIERS = 0.25       # share of sampled trusted pixels the fit must explain
MIN_EXTENT = 0.4         # inliers must span this share of the width and of the height (5th..95th percentile)
MIN_POINTS = 30
MIN_GAIN = 0.1           # the fit's inlier share must beat the identity's by this much


@dataclasses.dataclass
class CameraMotion:
    """The global motion fitted per frame: ``matrices`` (T, 2, 3) (identity where no fit counted), ``fitted`` (T,)
    bool, and the largest removed displacement of any pixel ``max_px``."""
    matrices: np.ndarray
    fitted: np.ndarray
    max_px: float

    @property
    def removed(self) -> bool:
        return self.max_px > 0.0

    def field(self, t: int, height: int, width: int) -> np.ndarray:
        """G_t (2, H, W): the displacement the camera gives pixel p at frame t."""
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        m = self.matrices[t].astype(np.float32)
        gx = m[0, 0] * xx + m[0, 1] * yy + m[0, 2] - xx
        gy = m[1, 0] * xx + m[1, 1] * yy + m[1, 2] - yy
        return np.stack([gx, gy])


def _identity() -> np.ndarray:
    return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def fit_camera_motion(traj: np.ndarray, trust: np.ndarray | None = None, seed: int = 0) -> CameraMotion:
    """Fit the global similarity of every frame of ``traj`` (T, 2, H, W) on pixels with ``trust`` (H, W) > 0.5
    (all pixels when None or when too few are trusted)."""
    t_count, _, h, w = traj.shape
    ys, xs = np.mgrid[0:h:GRID_STEP, 0:w:GRID_STEP]
    ys, xs = ys.ravel(), xs.ravel()
    if trust is not None:
        keep = trust[ys, xs] > 0.5
        if keep.sum() >= MIN_POINTS:
            ys, xs = ys[keep], xs[keep]
    src = np.stack([xs, ys], axis=1).astype(np.float32)
    matrices = np.repeat(_identity()[None], t_count, axis=0)
    fitted = np.zeros(t_count, bool)
    max_px = 0.0
    cv2.setRNGSeed(seed)
    for t in range(1, t_count):
        d = traj[t][:, ys, xs].T.astype(np.float32)  # (N, 2)
        if len(src) < MIN_POINTS or float(np.abs(d).max()) < 0.5 * RANSAC_PX:
            continue  # nothing moves: identity
        m, inliers = cv2.estimateAffinePartial2D(src, src + d, method=cv2.RANSAC,
                                                 ransacReprojThreshold=RANSAC_PX, maxIters=500, confidence=0.99)
        if m is None:
            continue
        inl = inliers.ravel().astype(bool)
        still = float((np.sqrt((d ** 2).sum(axis=1)) < RANSAC_PX).mean())  # what the identity explains
        if inl.mean() < max(MIN_INLIERS, still + MIN_GAIN):
            continue
        px, py = src[inl, 0], src[inl, 1]
        ext_x = np.percentile(px, 95) - np.percentile(px, 5)
        ext_y = np.percentile(py, 95) - np.percentile(py, 5)
        if ext_x < MIN_EXTENT * w or ext_y < MIN_EXTENT * h:
            continue
        matrices[t], fitted[t] = m, True
        corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], np.float64)
        moved = corners @ m.T - corners[:, :2]
        max_px = max(max_px, float(np.sqrt((moved ** 2).sum(axis=1)).max()))
    return CameraMotion(matrices, fitted, max_px)


def remove_camera_motion(traj: np.ndarray, camera: CameraMotion) -> np.ndarray:
    """Trajectories relative to the camera: F_t(p) - G_t(p) for every frame (a new array)."""
    out = traj.copy()
    t_count, _, h, w = traj.shape
    for t in np.flatnonzero(camera.fitted):
        out[t] -= camera.field(int(t), h, w)
    return out
