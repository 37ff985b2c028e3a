"""Whole clips of the scene generator (``render_scene``): the per-frame ground truth (trajectories, visibility,
layer and object ids) must describe exactly what the rendered frames show, for natural clips (off-bin
frequencies, decaying gusts, shortening strips) and exact loops alike; the sample clip and video writing."""
import os
import pathlib

import cv2
import numpy as np
import pytest

from addon.core import spectral
from backend.data.scene_motion import Timing, sway
from backend.data.scene_objects import Strip, StripSet
from backend.data.scene_plants import LAYER_BACKGROUND, LAYER_NEAR, LAYER_TOP
from backend.data.scene_render import SceneClip, exact_trajectories, render_clip, render_scene, render_window
from backend.data.scenes import SceneConfig, build_scene

ROOT = pathlib.Path(__file__).resolve().parents[1]
SMALL = dict(width=128, height=80, num_frames=150, fps=30.0, exact=False)


@pytest.fixture(scope="module")
def clips():
    clips = {kind: render_scene(SceneConfig(kind=kind, seed=3, **SMALL)) for kind in ("meadow", "flowers")}
    clips["candle"] = render_scene(SceneConfig(kind="candle", seed=6, exact=False))  # small flames: full size
    return clips


def _interior(clip: SceneClip) -> np.ndarray:
    """Moving pixels whose 3x3 neighbourhood belongs to the same object (no anti-aliased edge colours)."""
    ids = clip.object_ids
    same = clip.moving_mask.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            same &= np.roll(ids, (dy, dx), (0, 1)) == ids
    same[[0, -1], :] = False
    same[:, [0, -1]] = False
    return same


def _warp_error(clip, t, traj):
    """Per-pixel mean |frame_t(p + traj) - frame_0(p)| in 0..255 levels."""
    h, w = clip.moving_mask.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    warped = cv2.remap(clip.frames[t].astype(np.float32), xx + traj[0], yy + traj[1], cv2.INTER_LINEAR)
    return np.abs(warped - clip.frames[0].astype(np.float32)).mean(-1)


def test_shapes_and_conventions(clips):
    c = clips["meadow"]
    t, h, w = 150, 80, 128
    assert c.frames.shape == (t, h, w, 3) and c.frames.dtype == np.uint8
    assert c.trajectories.shape == (t, 2, h, w) and c.trajectories.dtype == np.float32
    assert c.moving_mask.shape == (h, w) and c.moving_mask.dtype == bool
    assert c.visibility.shape == (t, h, w) and c.layer_ids.shape == (h, w) and c.fps == 30.0
    assert np.all(c.trajectories[0] == 0)  # displacement of frame 0 relative to itself
    assert np.all(c.visibility[0])
    assert 0.1 < c.moving_mask.mean() < 0.9 and c.info["kind"] == "meadow"
    assert set(np.unique(c.layer_ids)) <= {0, 1, 2, 3}
    assert np.all(c.layer_ids[c.object_ids < 0] == LAYER_BACKGROUND)
    heads = np.isin(c.object_ids, [o.oid for o in c.objects if o.kind == "flower"])
    assert heads.any() and np.all(c.layer_ids[heads] == LAYER_TOP)  # flower heads are labelled as the top layer
    moving_ids = [o.oid for o in c.objects if o.moving]
    assert np.array_equal(c.moving_mask, np.isin(c.object_ids, moving_ids))


def test_deterministic_for_a_seed(clips):
    again = render_scene(build_scene(SceneConfig(kind="meadow", seed=3, **SMALL)))  # a Scene or its config
    assert np.array_equal(again.frames, clips["meadow"].frames)
    assert np.array_equal(again.trajectories, clips["meadow"].trajectories)
    other = render_scene(SceneConfig(kind="meadow", seed=4, **dict(SMALL, num_frames=2)))
    assert not np.array_equal(other.frames[0], again.frames[0])


@pytest.fixture(scope="module")
def short_clips(clips):
    """Full-size (256x160) clips: at that size object textures are several pixels across, so bilinear warping
    of a rendered frame is a fair judge of the trajectories."""
    short = {kind: render_scene(SceneConfig(kind=kind, seed=3, num_frames=48, exact=False))
             for kind in ("meadow", "flowers")}
    short["candle"] = clips["candle"]
    return short


@pytest.mark.parametrize("kind", ["meadow", "flowers", "candle"])
def test_trajectories_carry_frame0_colours_to_frame_t(short_clips, kind):
    c = short_clips[kind]
    inner = _interior(c)
    for t in (11, 23, 35, 47):
        moved = inner & c.visibility[t] & (np.hypot(*c.trajectories[t]) > 1.0)  # visible, clearly displaced
        assert moved.sum() > 100
        traj = c.trajectories[t]
        err = np.median(_warp_error(c, t, traj)[moved])
        assert err < 1.6, f"{kind} frame {t}: warped colours disagree by {err:.2f} levels"
        # sensitivity: ignoring the motion, or getting its size 20% wrong, is clearly worse
        assert np.median(_warp_error(c, t, np.zeros_like(traj))[moved]) > 5 * err
        assert np.median(_warp_error(c, t, traj * np.float32([[[0.8]], [[1.0]]]))[moved]) > 1.3 * err


def test_background_has_zero_motion_and_constant_colour(clips):
    c = clips["meadow"]
    bg = c.object_ids < 0
    assert np.all(c.trajectories[:, :, bg] == 0)
    for t in (20, 75, 149):
        uncovered = bg & c.visibility[t]  # no object contains the pixel centre at frame t
        far = uncovered & ~cv2.dilate((~uncovered).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        assert far.sum() > 1000
        assert np.array_equal(c.frames[t][far], c.frames[0][far])


def test_tips_move_more_than_bases(clips):
    c = clips["meadow"]
    amp = np.hypot(c.trajectories[:, 0], c.trajectories[:, 1]).mean(0)  # (H, W) mean displacement
    rows = np.arange(c.moving_mask.shape[0])[:, None] * np.ones_like(amp)
    compared = 0
    for o in c.objects:
        pix = c.object_ids == o.oid
        if o.kind != "blade" or o.layer != LAYER_NEAR or pix.sum() < 60:
            continue
        r = rows[pix]
        lo, hi = np.percentile(r, [20, 80])
        if hi - lo < 10:
            continue
        top, base = amp[pix][r <= lo].mean(), amp[pix][r >= hi].mean()
        assert top > 1.5 * base, f"blade {o.oid}: tip {top:.2f} px vs base {base:.2f} px"
        compared += 1
    assert compared >= 3


def test_natural_clips_leave_the_loop_and_ring_down(clips):
    """Natural clips: primaries off the loop's bins, some objects get a gust that starts at rest and rings down,
    bending strips shorten; so the motion is not a K = 16 loop (unlike an exact scene, below)."""
    scene = build_scene(SceneConfig(kind="meadow", seed=3, **SMALL))
    movers = [o for o in scene.objects if o.moving]
    bins = np.array([o.modes.freq[0] * 150 / 30.0 for o in movers])
    assert np.mean(np.abs(bins - np.rint(bins)) > 0.05) > 0.5
    gusts = [o for o in movers if np.any(o.modes.damping > 0)]
    assert 0.2 < len(gusts) / len(movers) < 0.5  # gust_fraction 0.35
    for o in gusts[:5]:
        g = o.modes.damping > 0
        assert np.all(o.modes.onset[g] > 0) and np.all(o.modes.damping[g] < 2 * np.pi * 0.13 * o.modes.freq[g])
    assert any(getattr(o, "drop", 0) for o in movers if isinstance(o, Strip))
    c = clips["meadow"]
    band = spectral.spectral_to_trajectories(spectral.trajectories_to_spectral(c.trajectories, 16), 150)
    assert np.abs(band - c.trajectories)[:, :, c.moving_mask].max() > 0.3  # an exact scene: < 1e-4 (below)


def test_exact_scene_clip_is_a_band_limited_loop():
    """An exact scene's clip: every mode on a bin 1..15, the trajectories are exactly a K = 16 series, match
    ``exact_trajectories`` and the frames repeat with the loop."""
    cfg = SceneConfig(kind="meadow", seed=5, **dict(SMALL, exact=True))
    c = render_scene(cfg)
    scene = build_scene(cfg)
    bins = np.concatenate([o.modes.freq * 150 / 30.0 for o in scene.objects if o.moving])
    np.testing.assert_allclose(bins, np.rint(bins), atol=1e-9)
    assert bins.min() >= 1 and bins.max() <= 15
    assert np.abs(c.trajectories[75]).max() > 1.0
    coeffs = spectral.trajectories_to_spectral(c.trajectories, 16)
    back = spectral.spectral_to_trajectories(coeffs, 150)
    assert np.abs(back - c.trajectories).max() < 1e-4  # all motion lives in the K = 16 bins
    np.testing.assert_allclose(c.trajectories[[7, 80]], exact_trajectories(scene, [7, 80]), atol=1e-5)
    assert np.abs(exact_trajectories(scene, [150])).max() < 1e-4  # frame T is frame 0 again
    assert np.array_equal(render_clip(scene, num_frames=151)[150], c.frames[0])


def test_candle_flames_move_and_candles_stand_still(clips):
    c = clips["candle"]
    flames = np.isin(c.object_ids, [o.oid for o in c.objects if o.kind == "flame"])
    bodies = np.isin(c.object_ids, [o.oid for o in c.objects if o.kind == "candle"])
    assert flames.sum() > 50 and bodies.sum() > 200
    assert np.array_equal(c.moving_mask, flames)
    assert np.all(c.trajectories[:, :, bodies] == 0)
    sway = np.abs(c.trajectories[:, 0][:, flames]).max()
    flicker = np.abs(c.trajectories[:, 1][:, flames]).max()
    longest = max(o.length_px for o in c.objects if o.kind == "flame")
    assert 0.5 < sway < longest and 0.3 < flicker < longest


def test_invalid_config_is_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match="unknown scene kind"):
        render_scene(SceneConfig(kind="ocean"))
    with pytest.raises(ValueError, match="too small"):
        render_scene(SceneConfig(width=8))
    with pytest.raises(ValueError, match="gust_fraction"):
        render_scene(SceneConfig(exact=False, gust_fraction=1.5))
    with pytest.raises(ValueError, match="exact"):  # a natural scene has no exact spectral volume
        render_window(build_scene(SceneConfig(exact=False)), [3])


def test_sample_clip_renders_once_into_the_cache(tmp_path, monkeypatch):
    import imageio.v2 as imageio

    from backend import sample

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = sample.sample_clip()
    assert path == str(tmp_path / "image-dynamics" / "sample" / f"sample_meadow-{sample.clip_key()}.mp4")
    assert os.listdir(os.path.dirname(path)) == [os.path.basename(path)]  # no temporary file left behind
    assert os.path.getsize(path) < 1_000_000
    frames = [f for f in imageio.get_reader(path)]
    assert len(frames) == 150 and frames[0].shape == (160, 256, 3)
    assert np.abs(frames[40].astype(int) - frames[0]).mean() > 1.0  # it visibly moves

    def no_render(*args, **kwargs):
        raise AssertionError("rendered again")

    write = sample.write_sample_clip
    monkeypatch.setattr(sample, "write_sample_clip", no_render)
    assert sample.sample_clip() == path  # cached: found by its key, not rendered again
    # `image-dynamics extract` without a VIDEO reads it from there
    from backend import cli

    out = tmp_path / "volume.npz"
    assert cli.main(["extract", "-o", str(out), "--frames", "32", "--k", "8", "--size", "96x64", "-q", "--force"]) == 0
    volume = spectral.load_npz(out)
    assert (volume.k, volume.num_frames, volume.width) == (8, 32, 96) and volume.amplitude().max() > 0.1
    # the key hashes the scene and the quality: another setting is another file
    assert sample.clip_key() != sample.clip_key({**sample.SCENE, "seed": 1})
    assert sample.clip_key() != sample.clip_key(crf=sample.CRF + 1)
    # an unwritable cache is a clear error, not a traceback
    (tmp_path / "file").write_text("")
    monkeypatch.setattr(sample, "write_sample_clip", write)
    with pytest.raises(RuntimeError, match="XDG_CACHE_HOME"):
        sample.sample_clip(cache_dir=str(tmp_path / "file" / "sub"))


def test_strip_inversion_is_exact():
    """Rendering finds the material height of each pixel row by Newton steps; they must invert the motion, also
    with the cantilever drop of natural clips."""
    timing = Timing(30.0, 150, 15, exact=False, gust_fraction=1.0)
    rng = np.random.default_rng(0)
    t = np.arange(150) / 30.0
    strips = [Strip("blade", LAYER_NEAR, 50.0, 170.0, 120.0, 3.0, lean=0.2, curve=9.0, drop=True,
                    modes=sway(rng, timing, 0.7, (8.0, 2.0, 0.0), 0.0)),
              Strip("flame", LAYER_TOP, 90.0, 80.0, 40.0, 8.0, power=1.5,
                    modes=sway(rng, timing, 2.0, (3.0, 0.0, 0.1), 1.0))]
    assert all(np.any(s.modes.damping > 0) for s in strips)  # gust_fraction 1: both ring down
    s = StripSet(strips, t)
    for k, strip in enumerate(strips):
        h = np.linspace(0.0, strip.L, 200)
        for ti in (0, 17, 99):
            i = np.full(h.shape, k)
            y = s.point(i, h, ti)[1]
            assert np.abs(s.invert(i, y, ti) - h).max() < 1e-6
