"""Motion evaluation metrics on known inputs, and the predict/animate commands with the tiny random model."""
import os

import numpy as np
import pytest
from PIL import Image

from addon.core.spectral import load_npz
from backend.cli import main
from backend.motion.evaluation import (amplitude_map, clip_interval, log_spectrum_error, roughness, spearman,
                                       summarise, trusted_metrics, truth_hint)


def test_spearman_known_values():
    a = np.arange(10.0)
    assert spearman(a, a ** 3) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(a, np.ones(10)) == 0.0            # a constant map knows nothing
    assert spearman([1, 2, 2, 3], [1, 2, 2, 3]) == pytest.approx(1.0)  # ties


def _volume(amp_px, k=3, h=8, w=12, region=(slice(2, 6), slice(3, 9))):
    c = np.zeros((16, 4, h, w), np.float32)
    c[k, 0][region] = amp_px
    return c


def test_metrics_on_known_volumes():
    true = _volume(2.0)
    assert amplitude_map(true)[3, 4] == pytest.approx(2.0) and amplitude_map(true)[0, 0] == 0
    assert log_spectrum_error(true, true) == 0.0
    # ten times the amplitude = 100 times the power = 2 decades at k=3, averaged over the 15 bins k >= 1
    assert log_spectrum_error(_volume(20.0), true) == pytest.approx(2.0 / 15, rel=1e-3)
    trust = np.ones(true.shape[-2:], np.float32)
    m = trusted_metrics(_volume(4.0), true, trust)
    assert m["amplitude_ratio"] == pytest.approx(2.0) and m["spearman"] == pytest.approx(1.0)
    assert m["roughness_ratio"] == pytest.approx(1.0)  # twice the motion, the same shape
    # untrusted pixels do not count: moving only where nothing is trusted scores as if it did not move
    untrusted = trust.copy()
    untrusted[2:6, 3:9] = 0.0
    assert trusted_metrics(_volume(4.0), true, untrusted)["amplitude_ratio"] == pytest.approx(1.0)  # both ~0


def test_roughness_tells_speckle_from_objects_and_the_hint_ratio():
    rng = np.random.default_rng(0)
    smooth = np.zeros((16, 4, 32, 128), np.float32)
    smooth[2, 0, :, 80:] = np.linspace(0.5, 1, 48)[None, :]  # the right part sways, more to the right
    speckle = smooth * rng.choice([-1.0, 1.0], size=smooth.shape[-2:]).astype(np.float32)
    mask = np.ones((32, 128), bool)
    assert roughness(smooth, mask) < 0.1 < 1.0 < roughness(speckle, mask)
    hint = truth_hint(smooth)  # what a person would paint: the moving right part, grown by a 16-px cell
    assert hint[:, 84:].mean() > 0.9 and hint[:, :40].max() < 0.1
    m = trusted_metrics(smooth, smooth, np.ones((32, 128), np.float32), hint)
    assert m["outside_inside"] < 0.3 and m["amplitude_ratio"] == pytest.approx(1.0)
    s = summarise([{"amplitude_ratio": 4.0, "spearman": 0.2}, {"amplitude_ratio": 0.25, "spearman": 0.4},
                   {"amplitude_ratio": float("nan"), "spearman": float("nan")}])
    assert s["amplitude_ratio"] == pytest.approx(1.0) and s["spearman"] == pytest.approx(0.3)  # ratios: geometric


def test_clip_interval_resamples_whole_clips():
    rows = [{"spearman": v} for v in (0.1, 0.1, 0.1, 0.5, 0.5, 0.5)]
    groups = ["a", "a", "a", "b", "b", "b"]
    lo, hi = clip_interval(rows, groups, "spearman", n=500)
    assert lo == pytest.approx(0.1) and hi == pytest.approx(0.5)  # all of a, all of b, or a mix: 0.1 .. 0.5
    assert clip_interval(rows, groups, "spearman", n=500) == (lo, hi)  # seeded: the same interval every time
    # ratios are summarised geometrically, so is their interval
    ratios = [{"amplitude_ratio": v} for v in (0.25, 4.0)]
    lo, hi = clip_interval(ratios, ["a", "b"], "amplitude_ratio", n=500)
    assert lo == pytest.approx(0.25) and hi == pytest.approx(4.0)
    within = clip_interval(ratios, ["a", "b"], "amplitude_ratio", n=500, level=0.2)
    assert within[0] == pytest.approx(1.0) and within[1] == pytest.approx(1.0)  # the middle: one of each
    same = [{"spearman": 0.3}] * 4
    assert clip_interval(same, ["a", "b", "c", "d"], "spearman") == pytest.approx((0.3, 0.3))
    assert all(np.isnan(clip_interval(rows, ["a"] * 6, "spearman")))  # one clip: no interval


def test_predict_and_animate_with_the_tiny_model(tmp_path, capsys):
    photo = tmp_path / "p.png"
    Image.fromarray((np.random.default_rng(0).random((60, 90, 3)) * 255).astype(np.uint8)).save(photo)
    out = tmp_path / "v.npz"
    assert main(["predict", str(photo), "-o", str(out), "--model", "tiny", "--steps", "2", "--seed", "5", "-q"]) == 0
    vol = load_npz(str(out))
    assert vol.source_size == (90, 60) and vol.provenance["seed"] == 5 and vol.provenance["steps"] == 2
    doubled = tmp_path / "v2.npz"
    assert main(["predict", str(photo), "-o", str(doubled), "--model", "tiny", "--steps", "2", "--seed", "5", "-q",
                 "--amplitude", "2"]) == 0
    np.testing.assert_allclose(load_npz(str(doubled)).coeffs, 2 * vol.coeffs, rtol=1e-6, atol=1e-6)
    gif = tmp_path / "new" / "loop.gif"
    assert main(["animate", str(photo), "-o", str(gif), "--volume", str(tmp_path / "vols2" / "v.npz"),
                 "--model", "tiny", "--steps", "2", "--frames", "32",
                 "--fps", "16", "-q"]) == 0
    frames = Image.open(gif)
    assert frames.n_frames == 32
    # a folder: one good photo, one broken file -> one volume, the failure reported, exit 1
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    assert main(["predict", str(tmp_path), "-o", str(tmp_path / "vols"), "--model", "tiny", "--steps", "1",
                 "-q"]) == 1
    assert os.listdir(tmp_path / "vols") == ["p.npz"]
    assert "broken.jpg" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["predict", "/nonexistent.jpg", "--model", "tiny"], "does not exist"),
    (["predict", "--model", "/nonexistent.pt"], "does not exist"),
    (["predict", "--model", "tiny", "--guidance", "-3"], "guidance"),
    (["animate", "--model", "tiny", "-o", "x.avi"], ".mp4 or .gif"),
    (["predict", "--model", "tiny", "--amplitude", "-1"], "--amplitude"),
])
def test_cli_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
