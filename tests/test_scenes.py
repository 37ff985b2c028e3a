"""Training scenes: exact spectral volumes, render pairs that match the rendered frames, appearance that predicts
motion, and negatives that the real-clip rejection rules reject; with and without photo backdrops and photo
textures (a made-up photo library, tests/photo_helpers.py)."""
import cv2
import numpy as np
import pytest

from addon.core.spectral import spectral_to_trajectories
from addon.core.spectral import mean_square_displacement
from backend.data.scene_motion import Timing, exact_coefficients, sample_times, sway
from backend.data.scene_render import exact_trajectories, render_clip, render_window
from backend.data.scenes import KINDS, SceneConfig, build_scene
from backend.data.windows import extract_window
from photo_helpers import make_library

TINY = dict(width=64, height=40, num_frames=150, fps=30.0, k=16, max_bin=15)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return str(make_library(tmp_path_factory.mktemp("photos")))


@pytest.fixture(scope="module")
def windows(library):
    out = {}
    for kind in KINDS:
        for photos in (False, True):
            scene = build_scene(SceneConfig(seed=11, kind=kind, amplitude_px=12.0, **TINY,
                                            photo_library=library if photos else None, photo_fraction=1.0))
            out[kind, photos] = (scene, render_window(scene, [23, 101]))
    return out


@pytest.mark.parametrize("photos", [False, True], ids=["procedural", "photos"])
@pytest.mark.parametrize("kind", KINDS)
def test_volume_reconstructs_exact_trajectories(windows, kind, photos):
    scene, win = windows[kind, photos]
    assert (scene.backdrop.kind == "photo") == photos
    if photos and kind not in ("candle", "static"):  # photo patches on leaves, petals, blades or cloth
        assert scene.textures.patches is not None and any(getattr(o, "photo", -1) >= 0 for o in scene.objects)
    frames = [1, 23, 64, 101, 149]
    truth = exact_trajectories(scene, frames)  # straight from the objects' modes at those frames
    rec = spectral_to_trajectories(win.coeffs, 150)[frames]
    np.testing.assert_allclose(rec, truth, atol=2e-4)
    np.testing.assert_allclose(win.flows, truth[[1, 3]], atol=1e-5)
    if kind == "static":
        assert scene.static and not win.coeffs.any() and not win.moving_mask.any()
    else:
        assert win.moving_mask.mean() > 0.002 and np.abs(win.coeffs[1:]).max() > 0.05
    # W(p) from the coefficients = mean over all T frames of |F_t|^2
    full = exact_trajectories(scene, range(150))
    np.testing.assert_allclose(win.weight, (full.astype(np.float64) ** 2).sum(1).mean(0), rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("photos", [False, True], ids=["procedural", "photos"])
@pytest.mark.parametrize("kind", ["meadow", "flowers", "cloth", "tree"])
def test_pair_frame_is_photo_moved_by_flow(kind, photos, library):
    """frame_t(p + flow(p)) = photo(p) on moving pixels away from edges; without the flow it does not match. With
    photo textures too: a patch is glued to its object's material coordinates."""
    size = dict(width=256, height=160) if kind == "meadow" else dict(width=128, height=80)  # blades need pixels
    scene = build_scene(SceneConfig(seed=11, kind=kind, amplitude_px=8.0, **dict(TINY, **size),
                                    photo_library=library if photos else None))
    if photos:
        for o in scene.objects:  # every leaf, petal, blade and cloth textured: the strictest case
            o.photo, o.photo_mix = (0, 1.0) if o.kind in ("leaf", "flower", "blade", "cloth") else (-1, 0.0)
    win = render_window(scene, [23, 60, 97])
    h, w = win.moving_mask.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    inner = win.moving_mask.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            inner &= np.roll(win.moving_mask, (dy, dx), (0, 1))
    errs, stills = [], []
    for j in range(3):
        sel = inner & (np.hypot(*win.flows[j]) > 0.5)
        f = win.frames[j].astype(np.float32)
        warped = cv2.remap(f, xx + win.flows[j, 0], yy + win.flows[j, 1], cv2.INTER_LINEAR)
        errs.append(np.abs(warped - win.photo).mean(-1)[sel])
        stills.append(np.abs(f - win.photo).mean(-1)[sel])
    err, still = np.concatenate(errs), np.concatenate(stills)
    assert len(err) > 30
    # medians: a few points are hidden at frame t, thin blades are mostly anti-aliased edge
    assert np.median(err) < 0.45 * np.median(still) and np.median(err) < 15, (np.median(err), np.median(still))


def test_deterministic_for_a_seed():
    a = render_window(build_scene(SceneConfig(seed=4, **TINY)), [9])
    b = render_window(build_scene(SceneConfig(seed=4, **TINY)), [9])
    c = render_window(build_scene(SceneConfig(seed=5, **TINY)), [9])
    np.testing.assert_array_equal(a.photo, b.photo)
    np.testing.assert_array_equal(a.coeffs, b.coeffs)
    np.testing.assert_array_equal(a.frames, b.frames)
    assert not np.array_equal(a.photo, c.photo)


def test_appearance_predicts_motion():
    """Grass: physically longer or softer blades sway slower; blades drawn longer sway more pixels. Candle flames
    flicker in the higher bands while candles and wicks stay still."""
    size, freqs, lengths, amps = [], [], [], []
    for seed in range(3):
        for o in build_scene(SceneConfig(seed=seed, kind="meadow", **TINY)).objects:
            if o.kind == "blade":
                size.append(o.physical_length / o.stiffness)
                freqs.append(o.modes.freq[0])
                lengths.append(o.L)
                amps.append(o.modes.amp[0, 0])
    rank = lambda v: np.argsort(np.argsort(v))  # noqa: E731
    assert len(size) > 30
    assert np.corrcoef(rank(size), rank(freqs))[0, 1] < -0.8
    assert np.corrcoef(rank(lengths), rank(amps))[0, 1] > 0.5
    scene = build_scene(SceneConfig(seed=2, kind="candle", **TINY))
    flames = [o for o in scene.objects if o.kind == "flame"]
    statics = [o for o in scene.objects if o.kind in ("candle", "wick")]
    assert flames and statics and not any(o.moving for o in statics)
    for o in flames:  # flicker (stretch) peaks at 2-3 Hz (bins 10-15)
        flicker = o.modes.freq[np.argmax(np.abs(o.modes.amp[:, 2]))]
        assert 2.0 <= flicker <= 3.0


def test_modes_sit_on_bins_and_coefficients_are_exact():
    timing = Timing(30.0, 150, 15)
    rng = np.random.default_rng(0)
    m = sway(rng, timing, 0.73, (2.0, 0.5, 0.0), 0.3)
    k = np.rint(m.freq * 150 / 30.0)
    np.testing.assert_allclose(m.freq * 150 / 30.0, k, atol=1e-9)
    assert k.min() >= 1 and k.max() <= 15 and len(set(k)) == len(k) == 15
    assert np.argmax(np.abs(m.amp[:, 0])) == 0 and k[0] == 4  # primary on the bin nearest 0.73 Hz
    t = np.arange(150) / 30.0
    sig = m.evaluate(t)[:, :2].T[None].transpose(2, 1, 0)  # (T, 2, 1)
    coeffs = exact_coefficients(m.evaluate(sample_times(timing))[:, :2, None], 16)
    np.testing.assert_allclose(spectral_to_trajectories(coeffs[..., None], 150)[..., 0], sig, atol=1e-4)
    np.testing.assert_allclose(mean_square_displacement(coeffs[..., None])[..., 0], (sig ** 2).sum(1).mean(0), rtol=1e-4)


def test_camera_shake_is_removed_and_a_static_scene_rejected():
    cfg = dict(width=64, height=40, num_frames=60, fps=30.0, k=8, max_bin=7, amplitude_px=16.0)
    sway_scene = build_scene(SceneConfig(seed=5, kind="flowers", **cfg))  # (1-px grass is beyond flow at 64x40)
    kept = extract_window(render_clip(sway_scene, noise=2.0, seed=1), 8)
    shaken = extract_window(render_clip(sway_scene, shake_px=4.0, noise=2.0, seed=1), 8)
    still = extract_window(render_clip(build_scene(SceneConfig(seed=5, kind="static", **cfg)), noise=2.0, seed=1), 8)
    assert kept.reason is None and kept.coeffs.shape == (8, 4, 40, 64)
    assert 0.01 < kept.stats.fraction_moving < 0.95
    # camera shake is removed (backend/camera.py) and the window kept with the flowers' own motion
    assert shaken.reason is None and shaken.stats.camera_px > 1.0 and shaken.coeffs is not None
    assert still.reason == "static" and still.stats.fraction_moving < 0.01


def test_bad_config_is_refused():
    with pytest.raises(ValueError, match="unknown scene kind"):
        build_scene(SceneConfig(kind="volcano", **TINY))
    with pytest.raises(ValueError, match="max_bin"):
        build_scene(SceneConfig(width=64, height=40, num_frames=20, k=16, max_bin=15))
    with pytest.raises(ValueError, match="pair frames"):
        render_window(build_scene(SceneConfig(**TINY)), [150])
