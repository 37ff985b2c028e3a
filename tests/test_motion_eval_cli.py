"""Motion evaluation metrics on known inputs, and the predict/animate commands with the tiny random model."""
import os

import numpy as np
import pytest
from PIL import Image

from addon.core.spectral import load_npz
from backend.cli import main
from backend.motion.evaluation import (amplitude_map, log_spectrum_error, spearman, trajectory_epe,
                                       window_metrics)


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
    assert amplitude_map(true, pool=1)[3, 4] == pytest.approx(2.0) and amplitude_map(true, pool=1)[0, 0] == 0
    assert log_spectrum_error(true, true) == 0.0
    # ten times the amplitude = 100 times the power = 2 decades at k=3, averaged over the 15 bins k >= 1
    assert log_spectrum_error(_volume(20.0), true) == pytest.approx(2.0 / 15, rel=1e-3)
    assert trajectory_epe(true, true) == 0.0
    # zero motion against a 2 px cosine sway: mean |2 cos| = 4/pi px on the moving 24 of 96 pixels
    assert trajectory_epe(np.zeros_like(true), true, stride=1) == pytest.approx(24 / 96 * 4 / np.pi, rel=2e-3)
    m = window_metrics([np.zeros_like(true), true], true)
    assert m["best_epe"] == 0.0 and m["spearman"] == pytest.approx(0.5)


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
