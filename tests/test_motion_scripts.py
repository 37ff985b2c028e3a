"""The motion scripts end to end on tiny built datasets: v1 build -> train vae/unet/freq -> ship -> calibrate; v2
build (with a held-out real clip) -> train -> resume -> ship -> evaluate on the held-out clip and scenes."""
import json
import os
import pathlib
import shutil
import sys

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import build_dataset  # noqa: E402
import calibrate_motion  # noqa: E402
import eval_motion  # noqa: E402
import train_motion  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("motion") / "data"
    assert build_dataset.main([str(root), "--synthetic", "8", "--size", "64x48", "--frames", "40", "--k", "16",
                               "--workers", "0", "--no-plot", "--negatives", "0", "--chunk", "4"]) == 0
    return root


def test_train_ship_and_evaluate(data, tmp_path, capsys):
    out = tmp_path / "run"
    common = ["--data", str(data), "--out", str(out), "--config", "tiny", "--batch", "16", "--val-every", "2", "-q"]
    assert train_motion.main(["--stage", "vae", "--steps", "2", *common]) == 0
    assert train_motion.main(["--stage", "unet", "--steps", "2", "--init", str(out / "vae" / "model.pt"),
                              *common]) == 0
    assert train_motion.main(["--stage", "freq", "--steps", "2", "--init", str(out / "unet" / "model.pt"),
                              *common]) == 0
    shipped = tmp_path / "shipped.pt"
    assert train_motion.main(["--ship", str(out / "freq" / "model.pt"), "--ship-to", str(shipped)]) == 0
    assert shipped.stat().st_size < os.path.getsize(out / "freq" / "model.pt")
    # a stage that does not follow its init's VAE is refused with a message, not a traceback
    assert train_motion.main(["--stage", "unet", "--steps", "2", "--init", str(shipped), "--data", str(data),
                              "--out", str(tmp_path / "other"), "--config", "default", "-q"]) == 2
    assert "different config" in capsys.readouterr().err

    capsys.readouterr()
    # calibration: fitted on the train split, written to a new file, the input kept, the gain loaded with the model
    calibrated = tmp_path / "calibrated.pt"
    before = shipped.read_bytes()
    assert calibrate_motion.main([str(shipped), "--data", str(data), "-o", str(calibrated), "--windows", "3",
                                  "--steps", "2", "--batch", "2"]) == 0
    assert shipped.read_bytes() == before
    assert "2 steps: log-spectrum error on the 3 training windows" in capsys.readouterr().out
    from backend.motion.checkpoint import load_checkpoint
    model, payload = load_checkpoint(str(calibrated))
    assert payload["extra"]["calibration"]["windows"] == 3
    assert payload["extra"]["calibration"]["train_log_spectrum_error_after"] <= \
        payload["extra"]["calibration"]["train_log_spectrum_error_before"]
    assert model.output_gain[0] == 1.0 and not torch.equal(model.output_gain, torch.ones_like(model.output_gain))
    assert abs(calibrated.stat().st_size - shipped.stat().st_size) < 4096  # stays fp16
    assert model.gain_table is None and payload["extra"]["calibration"]["steps"] == 2  # one count: one gain

    # more step counts: a table of gains per count, the count calibrated before kept as it was
    per_steps = tmp_path / "per_steps.pt"
    assert calibrate_motion.main([str(calibrated), "--data", str(data), "-o", str(per_steps), "--windows", "3",
                                  "--steps", "3,1", "--batch", "2"]) == 0
    assert "wrote" in capsys.readouterr().out
    table_model, table_payload = load_checkpoint(str(per_steps))
    assert table_model.gain_steps == (1, 2, 3)
    torch.testing.assert_close(table_model.gain_table[1], model.output_gain)
    assert torch.equal(table_model.output_gain, table_model.gain_table[2])  # 25 steps: beyond the last count
    torch.testing.assert_close(table_model.gain_for_steps(2), model.output_gain)
    calib = table_payload["extra"]["calibration"]
    assert calib["steps"] == [1, 2, 3] and set(calib["step_counts"]) == {"1", "2", "3"}
    assert calib["step_counts"]["2"]["train_log_spectrum_error_after"] == \
        payload["extra"]["calibration"]["train_log_spectrum_error_after"]
    for bad in ("0,5", "ten", ""):
        with pytest.raises(SystemExit):
            calibrate_motion.main([str(calibrated), "--data", str(data), "-o", str(per_steps), "--steps", bad])
        assert "step counts 1..500" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # never overwrites its input
        calibrate_motion.main([str(shipped), "--data", str(data), "-o", str(shipped)])
    assert exit_info.value.code == 2 and shipped.read_bytes() == before
    assert "must differ" in capsys.readouterr().err


@pytest.fixture(scope="module")
def data_v2(tmp_path_factory):
    """64x64 (the tiny v2 map): 10 procedural scenes and one real-format clip held out as split 'test'."""
    import cv2

    from backend.data.scene_render import render_clip
    from backend.data.scenes import SceneConfig, build_scene

    base = tmp_path_factory.mktemp("motion_v2")
    clips = base / "clips"
    clips.mkdir()
    scene = build_scene(SceneConfig(width=64, height=64, num_frames=60, fps=25.0, k=16, max_bin=15, seed=3,
                                    kind="flowers", amplitude_px=16.0))
    vw = cv2.VideoWriter(str(clips / "held.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (64, 64))
    for f in render_clip(scene, noise=1.0, seed=0):
        vw.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    vw.release()
    root = base / "data"
    assert build_dataset.main([str(root), "--synthetic", "10", "--size", "64x64", "--frames", "40", "--k", "16",
                               "--videos", str(clips), "--holdout", "held", "--stride", "10", "--workers", "0",
                               "--no-plot", "--negatives", "0", "--chunk", "5"]) == 0
    return root


def test_v2_train_resume_ship_and_evaluate(data_v2, tmp_path, capsys):
    out = tmp_path / "v2"
    common = ["--stage", "v2", "--data", str(data_v2), "--out", str(out), "--config", "tiny", "--batch", "4",
              "--val-every", "2", "--no-still-windows", "-q"]
    assert train_motion.main([*common, "--steps", "2"]) == 0
    state = torch.load(out / "state.pt", weights_only=True)
    assert state["step"] == 2
    assert bool((state["model"]["eps"] != 0.01).any())  # the data's eps, not the initial value
    metas = [out / "cache" / part / "meta.json" for part in ("train", "val")]
    before = [(m.read_text(), m.stat().st_mtime_ns) for m in metas]
    assert train_motion.main([*common, "--steps", "3"]) == 0  # resumes at step 2
    # with the run's own statistics: the cached targets (computed with eps) are reused, not rebuilt differently
    assert [(m.read_text(), m.stat().st_mtime_ns) for m in metas] == before
    assert torch.load(out / "state.pt", weights_only=True)["step"] == 3
    assert [json.loads(line)["step"] for line in open(out / "log.jsonl")] == [1, 2, 3]
    assert torch.load(out / "model.pt", weights_only=False)["extra"]["still_windows"] is False
    # a fine-tune on the same data and settings shares the base run's feature cache instead of building its own
    tune = tmp_path / "v2_tune"
    assert train_motion.main([*common[:4], "--out", str(tune), *common[6:], "--steps", "1", "--init",
                              str(out / "model.pt"), "--cache", str(out / "cache")]) == 0
    assert [(m.read_text(), m.stat().st_mtime_ns) for m in metas] == before and not (tune / "cache").exists()
    shipped = tmp_path / "v2_shipped.pt"
    assert train_motion.main(["--ship", str(out / "model.pt"), "--ship-to", str(shipped)]) == 0
    assert shipped.stat().st_size < os.path.getsize(out / "model.pt")
    capsys.readouterr()
    assert calibrate_motion.main([str(shipped), "--data", str(data_v2), "-o", str(tmp_path / "c.pt")]) == 2
    assert "v2 model" in capsys.readouterr().err  # v2 has no gains to fit: refused with a reason

    table = tmp_path / "eval.json"
    assert eval_motion.main(["--real", str(data_v2), "--synthetic", str(data_v2), "--model", str(shipped),
                             "--samples", "1", "--steps", "2", "--max-synthetic", "2", "--json", str(table)]) == 0
    report = json.load(open(table))
    assert report["real"]["groups"] == ["real:held"]  # only the held-out clip is scored as real
    rows = report["real"]["table"]
    assert list(rows) == ["zero motion", "mean spectrum", "texture cue", "ImageNet-class cue", "v1",
                          "model (automatic)", "model with the truth's hint"]  # v1: the shipped motion_v1.pt
    assert rows["zero motion"]["amplitude_ratio"] < 1e-3 and rows["mean spectrum"]["spearman"] == 0.0
    assert 0 <= rows["model with the truth's hint"]["outside_inside"] <= 0.1
    assert report["procedural"]["table"]["model (automatic)"]["windows"] == 1  # the one held-out scene seed
    assert set(report["real"]["interval_90"]) == {"v1", "model (automatic)", "model with the truth's hint"}
    printed = capsys.readouterr().out
    assert "| texture cue |" in printed and "per clip" in printed and "90% interval when the clips" in printed
    # candidates are compared on training clips (--real-split train), never on the held-out ones
    assert eval_motion.main(["--real", str(data_v2), "--model", str(shipped), "--v1", "none", "--samples", "1",
                             "--steps", "2", "--max-per-clip", "1", "--real-split", "train", "--json", str(table)]) == 0
    report = json.load(open(table))
    assert report["real"]["split"] == "train" and "real:held" not in report["real"]["groups"]
    assert "training windows" in capsys.readouterr().out
    # photos without truth: the model's level on each (the same number a prediction of that photo gives) and the
    # median, beside the typical level of the real training windows
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(ROOT / "backend" / "assets" / "sample_flower.jpg", photos / "flower.jpg")
    Image.fromarray(np.full((40, 60, 3), 128, np.uint8)).save(photos / "grey.png")
    (photos / "notes.txt").write_text("not a photo")
    assert eval_motion.main(["--photos", str(photos), "--real", str(data_v2), "--model", str(shipped), "--v1",
                             "none", "--samples", "1", "--steps", "2", "--max-per-clip", "1",
                             "--json", str(table)]) == 0
    levels = json.load(open(table))["photos"]
    assert sorted(levels["level_px"]) == ["flower.jpg", "grey.png"]
    assert levels["median_px"] == pytest.approx(np.median(list(levels["level_px"].values())))
    from backend.motion.commands import read_photo
    from backend.motion.evaluation import amplitude_map
    from backend.motion.predictor import PredictParams, load_predictor

    direct = load_predictor(str(shipped)).predict(read_photo(str(photos / "flower.jpg")), PredictParams(steps=2))
    assert levels["level_px"]["flower.jpg"] == pytest.approx(np.percentile(amplitude_map(direct.coeffs), 90),
                                                             rel=1e-5)
    assert levels["typical_px"] >= 0 and "median motion level" in capsys.readouterr().out
    (photos / "broken.jpg").write_bytes(b"not a jpeg")  # refused with the file's name, not a traceback
    assert eval_motion.main(["--photos", str(photos), "--model", str(shipped), "--v1", "none"]) == 2
    assert "broken.jpg" in capsys.readouterr().err
    for name in ("flower.jpg", "grey.png", "broken.jpg"):
        (photos / name).unlink()
    assert eval_motion.main(["--photos", str(photos), "--model", str(shipped), "--v1", "none"]) == 2
    assert "no .jpg or .png" in capsys.readouterr().err
