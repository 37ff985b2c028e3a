"""Real-clip motion we can trust: the camera's own motion is fitted robustly and removed (a shaking camera over a
swaying patch leaves the patch's own sway; a small object swinging as one is not taken for the camera), and the
per-pixel trust map rejects what flow cannot see (flat or black areas, inconsistent flow)."""
import cv2
import numpy as np
import pytest

from backend.camera import fit_camera_motion, remove_camera_motion
from backend.extract import analyze_window
from backend.flow import compute_trajectories, contrast_and_brightness, flow_trust
from test_extract import swaying_frames, texture

T, H, W = 40, 96, 144


def _shake(t):
    """A hand-held camera: a few px of smooth translation and a slight rotation, 0 at frame 0."""
    dx = 3.0 * np.sin(2 * np.pi * t / 17.0)
    dy = 2.0 * np.sin(2 * np.pi * t / 23.0 + 1.0) - 2.0 * np.sin(1.0)
    angle = 0.4 * np.sin(2 * np.pi * t / 29.0)  # degrees
    m = cv2.getRotationMatrix2D(((W - 1) / 2, (H - 1) / 2), angle, 1.0)
    m[:, 2] += (dx, dy)
    return m


def _shaken(frames):
    out = []
    for i, f in enumerate(frames):
        big = cv2.copyMakeBorder(f, 8, 8, 8, 8, cv2.BORDER_REFLECT)  # content beyond the frame, then crop
        m = _shake(i).copy()
        m[:, 2] += 8 - m[:, :2] @ np.array([8.0, 8.0])
        out.append(cv2.warpAffine(big, m, (W, H), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT))
    return np.stack(out)


def test_camera_shake_is_removed_and_the_patch_keeps_its_own_sway():
    frames, mask = swaying_frames(t=T, h=H, w=W, amp=3.0)
    traj_true = compute_trajectories(frames)  # what a tripod would have seen
    shaken = _shaken(frames)
    a = analyze_window(shaken)
    assert a.camera is not None and a.camera.fitted[1:].mean() > 0.9 and a.stats.camera_px > 2.0
    # the fitted global motion is the shake: compare its field with the shake's own at the frame centre region
    for t in (7, 19, 33):
        g = a.camera.field(t, H, W)
        m = _shake(t)
        yy, xx = np.mgrid[0:H, 0:W]
        want_x = m[0, 0] * xx + m[0, 1] * yy + m[0, 2] - xx
        want_y = m[1, 0] * xx + m[1, 1] * yy + m[1, 2] - yy
        inner = (slice(12, H - 12), slice(12, W - 12))
        assert np.abs(g[0][inner] - want_x[inner]).max() < 0.35
        assert np.abs(g[1][inner] - want_y[inner]).max() < 0.35
    # what is left: the background still, the patch swaying as on a tripod
    inner_bg = ~cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    inner_bg[:10], inner_bg[-10:], inner_bg[:, :10], inner_bg[:, -10:] = False, False, False, False
    res = a.trajectories
    assert np.median(np.sqrt((res[1:] ** 2).sum(1))[:, inner_bg]) < 0.3
    core = np.zeros_like(mask)
    core[24:40, 36:60] = True
    diff = np.median(res[1:, 0][:, core], axis=1) - np.median(traj_true[1:, 0][:, core], axis=1)
    assert np.abs(diff).mean() < 0.15 and np.abs(diff).max() < 0.8, diff
    assert a.reason is None


def test_a_small_object_swinging_as_one_is_not_the_camera():
    frames, mask = swaying_frames(t=T, h=H, w=W, amp=4.0)  # the patch covers 1/4 of the frame
    cam = fit_camera_motion(compute_trajectories(frames))
    assert not cam.fitted.any() and cam.max_px == 0.0
    traj = compute_trajectories(frames)
    np.testing.assert_array_equal(remove_camera_motion(traj, cam), traj)


def test_camera_motion_alone_is_rejected_as_camera_motion():
    pan, _ = swaying_frames(t=T, h=H, w=W, amp=4.0, region=False)  # the whole frame sways rigidly
    a = analyze_window(pan)
    assert a.reason == "camera_motion" and "camera motion only" in a.stats.verdict()
    big = swaying_frames(t=T, h=H, w=W, amp=9.0, region=False)[0]  # 9 px: over 5% of the width
    b = analyze_window(big, remove_camera=False)  # the paper's rule (relaxed for full-frame foliage) alone
    assert b.reason == "camera_motion" and b.stats.camera_px == 0.0
    small = analyze_window(pan, remove_camera=False)  # 4 px everywhere could be foliage: only removal tells
    assert small.reason is None


def test_trust_is_zero_where_flow_cannot_see_and_one_on_texture():
    frames, _ = swaying_frames(t=T, h=H, w=W, amp=2.0)
    frames = frames.copy()
    frames[:, :, :20] = 0          # a black border: nothing to see
    frames[:, :, -20:] = 128       # a flat grey border: no contrast
    for i in range(T):             # a flickering block: new content every frame, flow there is meaningless
        frames[i, 70:90, 40:70] = texture(20, 30, seed=100 + i)
    traj = compute_trajectories(frames)
    trust = flow_trust(frames, traj)
    assert trust.shape == (H, W) and trust.dtype == np.float32
    assert float(trust[:, 3:17].max()) == 0.0 and float(trust[:, -17:-3].max()) == 0.0
    assert float(np.median(trust[5:60, 30:110])) == pytest.approx(1.0)  # textured, consistent
    assert float(np.median(trust[74:86, 45:65])) < 0.3
    cb = contrast_and_brightness(frames[0])
    assert float(cb[:, 3:17].max()) == 0.0 and float(np.median(cb[5:60, 30:110])) == 1.0


def test_rules_count_trusted_pixels_only():
    from backend.extract import motion_stats

    traj = np.zeros((10, 2, 20, 20), np.float32)
    traj[:, 0, :, :10] = 5.0  # the left half "moves" ...
    trust = np.zeros((20, 20), np.float32)
    trust[:, 10:] = 1.0  # ... but only the still right half is trusted (e.g. the left is clear sky)
    st = motion_stats(traj, trust)
    assert st.fraction_moving == 0.0 and st.trusted_fraction == 0.5 and st.reason == "static"
    assert motion_stats(traj).fraction_moving == 0.5  # without trust every pixel counts
    assert motion_stats(traj, np.zeros((20, 20), np.float32)).trusted_fraction == 1.0  # none trusted: all count
