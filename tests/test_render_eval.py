"""scripts/eval_renderer.py end to end on a tiny set of pairs whose I_t is I_0 moved exactly by the flow."""
import json
import pathlib
import sys

import cv2
import numpy as np
import pytest
import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import eval_renderer  # noqa: E402

torch.set_num_threads(1)


def _pairs(path, n=3, h=48, w=64):
    rng = np.random.default_rng(0)
    i0s, its, flows = [], [], []
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for i in range(n):
        img = cv2.GaussianBlur(rng.uniform(0, 1, (h, w, 3)).astype(np.float32), (0, 0), 2.0)
        img = (img - img.min()) / (img.max() - img.min())
        flow = np.stack([np.full((h, w), 1.5 + i, np.float32), np.full((h, w), -0.75, np.float32)])
        moved = cv2.remap(img, xx - flow[0], yy - flow[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        i0s.append(img)
        its.append(moved)
        flows.append(flow)
    to8 = lambda a: np.round(np.clip(np.stack(a), 0, 1) * 255).astype(np.uint8)  # noqa: E731
    flow = np.stack(flows)
    np.savez(path, i0=to8(i0s), it=to8(its), flow=flow.astype(np.float16),
             weight=(flow ** 2).sum(axis=1).astype(np.float32), t=np.array([5, 40, 100]),
             group=np.array(["real:a", "real:a", "real:b"]))


def test_eval_renderer_scores_every_method(tmp_path, capsys):
    pairs, out = tmp_path / "pairs.npz", tmp_path / "eval.json"
    _pairs(pairs)
    assert eval_renderer.main(["--pairs", str(pairs), "--json", str(out)]) == 0
    summary = json.load(open(out))["summary"]
    names = {k.split(" (")[0] for k in summary}
    assert names == {"renderer", "forward warp", "mesh warp", "repeat I_0", "plain splat", "plain splat over I_0",
                     "remap"}
    assert all(v["pairs"] == 3 for v in summary.values())
    psnr = {k.split(" (")[0]: v["psnr"] for k, v in summary.items()}
    ssim = {k.split(" (")[0]: v["ssim"] for k, v in summary.items()}
    # the warps explain the motion better than no motion; remap reproduces its own construction almost exactly;
    # the mesh and the plain splat leave the strip the photo moved away from uncovered (PSNR), but match inside (SSIM)
    assert min(psnr["forward warp"], psnr["renderer"], psnr["remap"]) > psnr["repeat I_0"] + 10.0
    assert psnr["remap"] > 50.0
    assert min(ssim["mesh warp"], ssim["plain splat"]) > ssim["repeat I_0"] + 0.3
    assert set(summary["remap (x - F)"]["bins"]) == {"1-29", "30-74", "75-149"}
    # the flows move the photo exactly (up to 8-bit rounding and the border), so all 3 are in the top fidelity range
    assert summary["forward warp"]["fidelity"] == {">=25 dB": {"pairs": 3, "psnr": psnr["forward warp"],
                                                               "ssim": ssim["forward warp"]}}
    # holes: the columns the photo moved away from (1.5 + i px: 1, 2, 3 columns) and the bottom row (0.75 px up:
    # coverage 0.25), the same pixels for every method; the two error parts add up to each pair's MSE
    rows = json.load(open(out))["rows"]
    expected = np.mean([(c * 48 + 64 - c) / (48 * 64) for c in (1, 2, 3)])
    assert all(e["hole_fraction"] == pytest.approx(expected, abs=1e-7) for e in summary.values())
    for r in rows["repeat I_0"]:
        assert r[6] + r[7] == pytest.approx(10 ** (-r[1] / 10), rel=1e-5)
    assert summary["forward warp"]["mse_covered"] < 0.05 * summary["repeat I_0"]["mse_covered"]
    assert summary["plain splat (holes black)"]["mse_holes"] > 5 * summary["forward warp"]["mse_holes"]  # black holes
    over = summary["plain splat over I_0"]  # the photo shows through the holes: far less error there than black
    assert over["mse_holes"] < 0.2 * summary["plain splat (holes black)"]["mse_holes"]
    assert psnr["plain splat over I_0"] > psnr["plain splat"] + 10.0
    out = capsys.readouterr().out
    assert f"| method, mean squared error x 1000 | holes ({expected:.1%} of pixels) | covered pixels | frame |" in out
    assert "| forward warp | 3 |" in out and "| <20 dB (0 pairs) | 20-25 dB (0 pairs) | >=25 dB (3 pairs) |" in out


def test_flow_fidelity_measures_how_well_the_flow_explains_the_frames():
    from backend.render.pairs import FIDELITY_CAP, flow_fidelity

    rng = np.random.default_rng(1)
    h, w = 40, 56
    img = cv2.GaussianBlur(rng.uniform(0, 1, (h, w, 3)).astype(np.float32), (0, 0), 2.0)
    img = (img - img.min()) / (img.max() - img.min())
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    it = cv2.remap(img, xx - 3.0, yy + 1.0, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)  # I_0 moved (3, -1)
    right = np.stack([np.full((h, w), 3.0, np.float32), np.full((h, w), -1.0, np.float32)])
    good = flow_fidelity(img, it, right)
    assert good > 40.0  # exact up to the strip the photo moved away from, which is outside p + F(p)
    assert flow_fidelity(img.transpose(2, 0, 1), it.transpose(2, 0, 1), right) == pytest.approx(good)  # CHW too
    assert flow_fidelity(img, it, np.zeros_like(right)) < good - 15.0  # no motion does not explain the move
    assert flow_fidelity(img, it, right * 2.0) < good - 15.0  # nor does twice the motion
    assert flow_fidelity(img, img, np.zeros_like(right)) == FIDELITY_CAP  # identical frames, zero flow
    assert flow_fidelity(img, it, np.full_like(right, 500.0)) == 0.0  # every p + F(p) outside the frame
    with pytest.raises(ValueError, match="shape"):
        flow_fidelity(img, it, right[0])
    with pytest.raises(ValueError, match="do not match"):
        flow_fidelity(img[:20], it[:20], right)


def test_eval_renderer_needs_one_source(capsys):
    with pytest.raises(SystemExit):
        eval_renderer.main([])
    assert "give --data or --pairs" in capsys.readouterr().err


def test_eval_renderer_flow_noise_degrades_the_warps_not_the_target(tmp_path, capsys):
    pairs = tmp_path / "pairs.npz"
    _pairs(pairs)
    scores = {}
    for noise in (0.0, 0.5):
        out = tmp_path / f"eval{noise}.json"
        assert eval_renderer.main(["--pairs", str(pairs), "--no-mesh", "--flow-noise", str(noise),
                                   "--json", str(out)]) == 0
        data = json.load(open(out))
        assert data["flow_noise"] == noise
        scores[noise] = {k.split(" (")[0]: v["psnr"] for k, v in data["summary"].items()}
    assert scores[0.5]["repeat I_0"] == scores[0.0]["repeat I_0"]  # no flow: same target, same score
    for name in ("forward warp", "renderer", "remap"):
        assert scores[0.5][name] < scores[0.0][name] - 3.0, name
    again = tmp_path / "again.json"  # the error is seeded per pair
    assert eval_renderer.main(["--pairs", str(pairs), "--no-mesh", "--flow-noise", "0.5", "--json", str(again)]) == 0
    assert json.load(open(again))["rows"] == json.load(open(tmp_path / "eval0.5.json"))["rows"]
    capsys.readouterr()
    with pytest.raises(SystemExit):
        eval_renderer.main(["--pairs", str(pairs), "--flow-noise", "-1"])
    assert "--flow-noise must be in [0, 10]" in capsys.readouterr().err
