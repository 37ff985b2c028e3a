"""What the shipped checkpoints compute, pinned bit for bit: a refactor must not change a single output bit.

Each test runs a shipped model (or the network-free preview) on the shipped sample photo with fixed settings and
compares the SHA-256 of the output array's bytes with the one recorded when the test was written, on one torch
thread (CPU float results can depend on the thread count). A few values are compared too, with a tolerance, so
that a failure tells a real change (values differ) from a different CPU's rounding (hash differs, values agree).
When an output changes on purpose (a new checkpoint, a fixed bug), record the new hash and values from the
failure message and say why in the commit.
"""
import hashlib
import os

import cv2
import numpy as np

ASSETS = os.path.join(os.path.dirname(__file__), "..", "backend", "assets")
MOTION_CHECKPOINT = os.path.join(ASSETS, "motion_v1.pt")  # the first shipped motion model (v1)
MOTION_V2_CHECKPOINT = os.path.join(ASSETS, "motion_default.pt")  # the shipped motion model (v2)
RENDERER_CHECKPOINT = os.path.join(ASSETS, "renderer_default.pt")
SAMPLE_PHOTO = os.path.join(ASSETS, "sample_flower.jpg")
FRAMES = (7, 40)  # frames of the 150-frame loop that the renderer and the preview draw


def _photo() -> np.ndarray:
    return np.ascontiguousarray(cv2.cvtColor(cv2.imread(SAMPLE_PHOTO), cv2.COLOR_BGR2RGB))


def _volume():
    """A fixed smooth spectral volume, 256x160, K=16, up to a few pixels of motion (numpy only)."""
    from addon.core.spectral import SpectralVolume, resize_bilinear

    rng = np.random.default_rng(17)
    coeffs = resize_bilinear(rng.normal(size=(16, 4, 5, 8)), 160, 256)
    coeffs *= 3.0 / np.arange(1, 17)[:, None, None, None]
    return SpectralVolume(coeffs.astype(np.float32), fps=30.0, num_frames=150)


def _loop_q(k: int = 16, num_frames: int = 150) -> np.ndarray:
    """Modal coordinates (N, K) of the volume's own loop at FRAMES: exp(2 pi i k n / T)."""
    return np.exp(2j * np.pi * np.multiply.outer(np.asarray(FRAMES, float), np.arange(k)) / num_frames)


def _check(array: np.ndarray, digest: str, picks: dict, rtol: float) -> None:
    array = np.ascontiguousarray(array)
    flat = array.reshape(-1)
    got = {i: float(flat[i]) for i in picks}
    values_agree = all(abs(got[i] - v) <= rtol * abs(v) for i, v in picks.items())
    actual = hashlib.sha256(array.tobytes()).hexdigest()
    assert values_agree, f"values changed: {got} (recorded {picks}); sha256 {actual}"
    assert actual == digest, (f"sha256 {actual} != recorded {digest}, although the sampled values agree to "
                              f"{rtol:g} (relative): rounding differs (another CPU?) or a small change; {got}")


def _picks(array: np.ndarray, n: int = 4) -> dict:
    """Values at flat indices spread over the array and at its largest magnitude (for recording)."""
    flat = np.ascontiguousarray(array).reshape(-1)
    picks = list(np.linspace(0, flat.size - 1, n).astype(int)) + [int(np.abs(flat).argmax())]
    return {int(i): float(flat[i]) for i in picks}


MOTION_SHA256 = "9ac60ef65750eba485e2846c8e13c387ab4a9d2ad482b6d4c41c8cb6245a57e0"
MOTION_VALUES = {0: -0.00016001005133148283, 873813: 1.6331870938302018e-05, 1747626: 1.0010162299067815e-07,
                 2621439: -9.96589551505167e-06, 834672: 1.910233974456787}
# Loop guidance (0.3): recorded after its seam loss moved to backend.spectral.displacement_at (phases in float64
# instead of float32): values changed by at most 1.2e-5 of their RMS here. Loop-guided volumes are sensitive to
# float rounding (the L1 seam loss's gradient flips sign where the seam is ~0): over 25 steps the old code's volume
# already differed by 12% RMS between 1 and 2 torch threads.
MOTION_LOOP_SHA256 = "de66fe32d3ec45ac45c7a0550dfa14cec4b490db1b4f3947435436edbf7b4666"
MOTION_LOOP_VALUES = {0: -7.73032624579173e-08, 873813: 0.08334201574325562, 1747626: 4.80472579056368e-07,
                      2621439: -1.0175454008276574e-05, 497109: 63.721195220947266}
# v2 (shipped 2026-12-05 as gid-motion-v2@d897b9e22b8d, fine-tuned with zoomed crops, half-size mosaics and
# recoloured copies of the real windows): automatic, and with a hint "the right half moves"
MOTION_V2_SHA256 = "bea2722a04ec592cb526c7720b3523b23bac7750ad975929725ea5b9031b359f"
MOTION_V2_VALUES = {0: -0.00024768043658696115, 873813: 0.001898347632959485, 1747626: -0.0005747821996919811,
                    2621439: -0.0, 380356: 1.763197660446167}
MOTION_V2_HINT_SHA256 = "07a4b2b5e6a5858b308498abfb05687b65eedb8783fdaaa387e6c0200fda45ff"
MOTION_V2_HINT_VALUES = {0: -0.0, 873813: 0.0, 1747626: -0.001043108874000609, 2621439: -0.0,
                         380356: 2.24849534034729}
RENDERER_SHA256 = "f5647d7223bfba9b4f28b278cad4d199b163c2d85d7395d56b00961f93689f18"
RENDERER_VALUES = {0: 0.7844443917274475, 81919: 0.0027376909274607897, 163839: 0.9960813522338867,
                   245759: 0.1202477216720581, 7914: 1.0}
# The preview's splat metric became backend.splat.motion_metric (RMS / max(peak, 1e-6) instead of / (peak + 1e-6)):
# recorded after it; one value of the 245,760 changed, by one grey level.
PREVIEW_SHA256 = "1d37420cf33d598bfe63ffc94c76f9dced3e433b7175f9b2ba35f84d544a1693"
PREVIEW_VALUES = {0: 217.0, 81919: 1.0, 163839: 254.0, 245759: 29.0, 7911: 255.0}


def test_shipped_motion_model_gives_the_recorded_volume(one_thread):
    from backend.motion.predictor import PredictParams, load_predictor

    predictor = load_predictor(MOTION_CHECKPOINT, device="cpu")
    volume = predictor.predict(_photo(), PredictParams(steps=3, guidance=1.5, seed=3))
    assert volume.coeffs.shape == (16, 4, 160, 256) and volume.coeffs.dtype == np.float32
    _check(volume.coeffs, MOTION_SHA256, MOTION_VALUES, rtol=1e-4)


def test_shipped_motion_model_with_loop_guidance_gives_the_recorded_volume(one_thread):
    from backend.motion.predictor import PredictParams, load_predictor

    predictor = load_predictor(MOTION_CHECKPOINT, device="cpu")
    volume = predictor.predict(_photo(), PredictParams(steps=2, guidance=1.5, loop=0.3, seed=5))
    _check(volume.coeffs, MOTION_LOOP_SHA256, MOTION_LOOP_VALUES, rtol=1e-4)


def test_shipped_v2_motion_model_gives_the_recorded_volumes(one_thread):
    from backend.motion.predictor import PredictParams, load_predictor

    predictor = load_predictor(MOTION_V2_CHECKPOINT, device="cpu")
    assert predictor.architecture == "v2"
    photo = _photo()
    params = PredictParams(steps=3, guidance=1.5, seed=3)
    volume = predictor.predict(photo, params)
    assert volume.coeffs.shape == (16, 4, 160, 256) and volume.coeffs.dtype == np.float32
    _check(volume.coeffs, MOTION_V2_SHA256, MOTION_V2_VALUES, rtol=1e-4)
    moves = np.zeros(photo.shape[:2], np.float32)
    moves[:, photo.shape[1] // 2:] = 1.0
    _check(predictor.predict(photo, params, moves=moves).coeffs, MOTION_V2_HINT_SHA256, MOTION_V2_HINT_VALUES,
           rtol=1e-4)


def test_shipped_renderer_gives_the_recorded_frames(one_thread):
    from backend.render import checkpoint
    from backend.render.render import iter_frames

    model, _meta = checkpoint.load(RENDERER_CHECKPOINT)
    frames = np.concatenate(list(iter_frames(model, _photo(), _volume(), _loop_q(), size=(256, 160))))
    assert frames.shape == (2, 160, 256, 3) and frames.dtype == np.float32
    _check(frames, RENDERER_SHA256, RENDERER_VALUES, rtol=1e-4)


def test_preview_gives_the_recorded_frames(one_thread):
    from PIL import Image

    from backend.preview import warp_frames

    photo = np.asarray(Image.fromarray(_photo()).resize((256, 160), Image.Resampling.LANCZOS))
    frames = warp_frames(photo, _volume(), FRAMES)
    assert frames.shape == (2, 160, 256, 3) and frames.dtype == np.uint8
    _check(frames, PREVIEW_SHA256, PREVIEW_VALUES, rtol=0.0)
