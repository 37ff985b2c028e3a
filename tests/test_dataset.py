"""The dataset build and its reader: a tiny build (64x40, T = 40, K = 8) of synthetic scenes and real-format clips,
checked against the scenes re-rendered from their seeds, the rejection log, the splits, the statistics, resuming
and determinism."""
import json
import os
import pathlib
import sys

import cv2
import numpy as np
import pytest

from addon.core.spectral import normalization_scales, spectral_to_trajectories
from backend.data.augment import Augment
from backend.data.build import scene_seed
from backend.data.dataset import DatasetError, MotionDataset, RenderPairs, assign_splits, load_card, load_stats
from backend.data.scene_render import exact_trajectories, render_clip, render_window
from backend.data.scenes import SceneConfig, build_scene
from backend.data.stats import update_stats

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import build_dataset  # noqa: E402

W, H, T, K = 64, 40, 40, 8
SYN = 7


def _write_clip(path, frames, fps=25.0):
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (frames.shape[2], frames.shape[1]))
    for f in frames:
        vw.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    vw.release()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    cfg = dict(width=W, height=H, num_frames=60, fps=25.0, k=K, max_bin=K - 1, amplitude_px=16.0)
    sway = build_scene(SceneConfig(seed=3, kind="flowers", **cfg))  # (1-px grass is beyond flow at 64x40)
    _write_clip(d / "sway.avi", render_clip(sway, noise=1.0, seed=0))            # 60 frames: 3 windows, kept
    _write_clip(d / "shaky.avi", render_clip(sway, shake_px=4.0, noise=1.0, seed=1)[:50])  # 2 windows, camera removed
    _write_clip(d / "short.avi", render_clip(sway, num_frames=20, seed=2))       # shorter than T: skipped
    (d / "broken.mp4").write_bytes(b"not a video at all")                          # unreadable: logged, skipped
    return d


def _args(root, clips, *extra):
    return [str(root), "--synthetic", str(SYN), "--videos", str(clips), "--size", f"{W}x{H}", "--frames", str(T),
            "--k", str(K), "--stride", "10", "--chunk", "3", "--negatives", "1", "--workers", "0", "--no-plot", *extra]


@pytest.fixture(scope="module")
def built(tmp_path_factory, clips):
    root = tmp_path_factory.mktemp("ds") / "data"
    assert build_dataset.main(_args(root, clips)) == 0
    return root


def test_card_counts_and_rejections(built):
    card = load_card(built)
    c = card["counts"]["motion"]
    assert (c["synthetic"], c["real"], c["total"]) == (SYN, 5, SYN + 5)
    assert c["train"] + c["val"] == c["total"] and c["val"] >= 1
    clips = card["real"]["clips"]
    assert clips["sway"]["windows"] == 3 and clips["sway"]["kept"] == 3
    # the shaky clip's camera motion is removed and its windows kept (backend/camera.py)
    assert clips["shaky"]["windows"] == 2 and clips["shaky"]["kept"] == 2 and clips["shaky"]["camera_removed"] == 2
    assert clips["short"]["status"].startswith("too short") and card["real"]["too_short"] == ["short"]
    assert clips["broken"]["status"].startswith("unreadable") and card["real"]["unreadable"] == ["broken"]
    assert card["real"]["rejected_windows"] == []
    assert [n["expected"] for n in card["negatives"]] == ["kept", "static"]
    shake, still = card["negatives"]
    assert shake["verdict"] == "kept" and shake["camera_px"] > 1.0 and shake["as_expected"]
    assert still["verdict"] != "kept"  # (flow on a flat 64x40 wall is too noisy to tell static from camera
    # here; tests/test_scenes.py checks the static verdict on a landscape, the full build at 256x160)
    assert card["counts"]["render_pairs"] == SYN * 2 + 5 * 3
    assert sum(card["synthetic"]["by_kind"].values()) == SYN


def test_motion_samples_match_their_scenes(built):
    ds = MotionDataset(built, "all")
    assert len(ds) == SYN + 5
    syn = [i for i in range(len(ds)) if ds.index.samples[i]["source"] == "synthetic"]
    for i in syn[:3]:
        s = ds[i]
        meta = ds.index.samples[i]
        assert s["photo"].shape == (3, H, W) and s["coeffs"].shape == (K, 4, H, W)
        assert s["photo"].dtype.is_floating_point and 0 <= float(s["photo"].min()) <= float(s["photo"].max()) <= 1
        assert (s["fps"], s["num_frames"], s["source"]) == (30.0, T, "synthetic")
        scene = build_scene(SceneConfig(W, H, T, 30.0, K, K - 1, scene_seed(0, meta["scene"])))
        assert s["group"] == f"syn:{scene.config.seed}"
        win = render_window(scene)
        np.testing.assert_array_equal((s["photo"].numpy().transpose(1, 2, 0) * 255).round(), win.photo)
        # the saved volume (float16 on disk) reconstructs the scene's exact trajectories
        frames = [1, 13, 27, 39]
        rec = spectral_to_trajectories(s["coeffs"].numpy(), T)[frames]
        truth = exact_trajectories(scene, frames)
        tol = 2e-3 * max(1.0, float(np.abs(truth).max()))
        np.testing.assert_allclose(rec, truth, atol=tol)
        assert s["trust"].shape == (H, W) and float(s["trust"].min()) == 1.0  # exact motion: trusted everywhere
    real = MotionDataset(built, "all")[len(ds) - 1]
    assert real["source"] == "real" and real["group"] == "real:sway" and real["fps"] == 25.0
    # real windows carry the flow's trust: some pixels trusted, some not (the flat background has no contrast)
    assert 0.05 < float((real["trust"] > 0.5).float().mean()) < 0.95


def test_render_pairs(built):
    rp = RenderPairs(built, "all")
    s = rp[0]
    assert s["i0"].shape == (3, H, W) and s["it"].shape == (3, H, W) and s["flow"].shape == (2, H, W)
    assert s["weight"].shape == (H, W) and 1 <= s["t"] < T
    meta = rp.index.samples[0]
    scene = build_scene(SceneConfig(W, H, T, 30.0, K, K - 1, scene_seed(0, meta["scene"])))
    truth = exact_trajectories(scene, [s["t"]])[0]
    np.testing.assert_allclose(s["flow"].numpy(), truth, atol=1e-2 * max(1.0, float(np.abs(truth).max())))
    full = exact_trajectories(scene, range(T))
    np.testing.assert_allclose(s["weight"].numpy(), (full.astype(np.float64) ** 2).sum(1).mean(0), rtol=2e-3,
                               atol=1e-3)
    reals = [i for i in range(len(rp)) if rp.index.samples[i]["source"] == "real"]
    assert len(reals) == 15 and float(rp[reals[0]]["flow"].abs().max()) > 0.5


def test_splits_hold_out_whole_groups(built):
    train, val = MotionDataset(built, "train"), MotionDataset(built, "val")
    assert len(train) + len(val) == len(MotionDataset(built, "all"))
    assert not set(train.groups()) & set(val.groups())
    card = load_card(built)
    assert set(val.groups()) == set(card["splits"]["val_groups"])
    rp_val = RenderPairs(built, "val")
    assert set(rp_val.groups()) <= set(card["splits"]["val_groups"])
    groups = [f"syn:{i}" for i in range(100)] + [f"real:c{i}" for i in range(10)]
    v = assign_splits(groups, seed=0)
    assert v == assign_splits(list(reversed(groups)), seed=0)
    assert sum(g.startswith("syn") for g in v) == 5 and sum(g.startswith("real") for g in v) == 2
    assert len(MotionDataset(built, "test")) == 0  # nothing held out by --holdout
    with pytest.raises(ValueError, match="split"):
        MotionDataset(built, "holdout")


def test_holdout_clips_are_in_no_training_split_nor_the_statistics(clips, tmp_path):
    root = tmp_path / "held"
    assert build_dataset.main(_args(root, clips, "--holdout", "shaky")) == 0
    card = load_card(root)
    assert card["splits"]["test_groups"] == ["real:shaky"] and "real:shaky" not in card["splits"]["val_groups"]
    assert set(MotionDataset(root, "test").groups()) == {"real:shaky"}
    for split in ("train", "val"):
        assert "real:shaky" not in MotionDataset(root, split).groups()
    assert card["real"]["clips"]["shaky"]["split"] == "test"
    assert int(load_stats(root)["num_windows"]) == len(MotionDataset(root, "train"))
    with pytest.raises(SystemExit, match="not among --videos"):
        build_dataset.main(_args(tmp_path / "bad", clips, "--holdout", "nosuchclip"))


def test_stats_are_the_95th_percentile_of_the_train_split(built):
    st = load_stats(built)
    coeffs = np.stack([MotionDataset(built, "train")[i]["coeffs"].numpy() for i in range(len(MotionDataset(
        built, "train")))])
    want = normalization_scales(coeffs)
    assert st["scales"].shape == (K,) and st["scales"].dtype == np.float32
    np.testing.assert_allclose(st["scales"], want, rtol=0.03)
    np.testing.assert_allclose(st["mean_power"], (coeffs.astype(np.float64) ** 2).sum(2).mean((0, 2, 3)),
                               rtol=1e-3)
    assert int(st["num_windows"]) == len(coeffs)
    assert st["hist_counts"].sum() == coeffs.size


def test_extra_statistics_travel_with_the_data(built, tmp_path):
    import shutil
    root = tmp_path / "copy"
    shutil.copytree(built, root)
    update_stats(root, latent_mean=np.arange(4, dtype=np.float32))
    st = load_stats(root)
    np.testing.assert_array_equal(st["latent_mean"], np.arange(4))
    np.testing.assert_array_equal(st["scales"], load_stats(built)["scales"])
    with pytest.raises(ValueError, match="scales"):
        update_stats(root, scales=np.ones(K))


def test_resume_skips_finished_jobs_and_refuses_other_arguments(built, clips, capsys):
    jobs = sorted(os.listdir(built / "jobs"))
    stamp = {j: os.path.getmtime(built / "jobs" / j) for j in jobs}
    card_before = load_card(built)
    assert build_dataset.main(_args(built, clips)) == 0
    assert "0 to run" in capsys.readouterr().out
    assert {j: os.path.getmtime(built / "jobs" / j) for j in jobs} == stamp
    assert load_card(built)["counts"] == card_before["counts"]
    with pytest.raises(SystemExit, match="other arguments"):
        build_dataset.main(_args(built, clips, "--seed", "1"))


def test_deterministic_for_a_seed(built, clips, tmp_path):
    other = tmp_path / "again"
    assert build_dataset.main(_args(other, clips)) == 0
    a, b = MotionDataset(built, "all"), MotionDataset(other, "all")
    for i in (0, len(a) - 1):
        np.testing.assert_array_equal(a[i]["photo"].numpy(), b[i]["photo"].numpy())
        np.testing.assert_array_equal(a[i]["coeffs"].numpy(), b[i]["coeffs"].numpy())
    assert load_card(built)["splits"] == load_card(other)["splits"]


def test_augmented_samples_and_errors(built, tmp_path):
    ds = MotionDataset(built, "all", augment=Augment(), seed=3)
    a, b = ds[1], ds[1]
    np.testing.assert_array_equal(a["coeffs"].numpy(), b["coeffs"].numpy())  # (seed, epoch, index)
    ds.set_epoch(1)
    assert not np.array_equal(ds[1]["photo"].numpy(), a["photo"].numpy())
    with pytest.raises(DatasetError, match="card.json"):
        MotionDataset(tmp_path, "train")
    with pytest.raises(DatasetError, match="stats.npz"):
        load_stats(tmp_path)
    assert json.loads((built / "card.json").read_text())["format"] == "gid-dataset"
