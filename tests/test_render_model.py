"""Neural renderer (backend/render): splatting conserves weight, zero motion gives the photo back, losses and
metrics are exact, checkpoints round-trip and reject mismatches, training decreases the loss and resumes exactly."""
import math
import os

import numpy as np
import pytest
import torch

from backend.render import RendererConfig, build_renderer
from backend.render import checkpoint
from backend.render.losses import LossWeights, gradient_l1, psnr, render_loss, ssim
from backend.render.pairs import NpzPairs
from backend.render.splatting import downsample_flow, pyramid_splat
from backend.render.training import TrainConfig, train
from backend.splat import motion_metric

TINY = RendererConfig(channels=(4, 6, 8))


def _photo(h=40, w=56, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, h, w, generator=g)


def _smooth_flow(n, h, w, amp, seed=0):
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, 2, 3, 4, generator=g)
    return torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False) * amp


# ---------------------------------------------------------------------------------------------------- splatting

def test_pyramid_splat_conserves_weight_at_every_level():
    h, w = 32, 48
    # Flow that keeps every source inside the image: a contraction toward the centre by up to 3 px.
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    flow = torch.stack([(w / 2 - xs) * 0.12, (h / 2 - ys) * 0.12])[None]
    weight = flow.pow(2).sum(1, keepdim=True)
    metric = motion_metric(weight, 20.0, 1.0)
    levels = [torch.ones(1, 5, h, w), torch.ones(1, 3, h // 2, w // 2), torch.ones(1, 2, h // 4, w // 4)]
    for s, (warped, coverage) in enumerate(pyramid_splat(levels, flow, metric)):
        # Every source pixel's bilinear weights sum to 1 and all land inside: total coverage = source pixels.
        assert coverage.sum().item() == pytest.approx((h >> s) * (w >> s), rel=1e-5)
        # Normalised: a constant feature map stays exactly constant wherever anything lands.
        covered = coverage[0, 0] > 0
        assert torch.allclose(warped[0][:, covered], torch.ones(1), atol=1e-5)
    assert torch.allclose(downsample_flow(flow, 2), torch.nn.functional.avg_pool2d(flow, 4) / 4)


# ---------------------------------------------------------------------------------------------------- renderer

@pytest.mark.parametrize("kind", ["pyramid", "baseline"])
def test_untrained_zero_motion_is_the_photo_at_any_size(kind):
    torch.manual_seed(0)
    model = build_renderer(RendererConfig(kind=kind, channels=(4, 6, 8))).eval()
    for h, w in ((40, 56), (37, 51)):  # the second is padded internally to a multiple of 4
        img = _photo(h, w)
        with torch.no_grad():
            out = model(img, torch.zeros(2, 2, h, w), torch.zeros(1, 1, h, w))
        assert out.shape == (2, 3, h, w)
        assert torch.equal(out[0], img[0]) and torch.equal(out[1], img[0])


def test_renderer_is_deterministic_and_frames_match_single_calls():
    torch.manual_seed(1)
    model = build_renderer(TINY).eval()
    torch.nn.init.normal_(model.decoder.head.weight, std=0.05)  # make the decoder matter
    img = _photo()
    flow = _smooth_flow(3, 40, 56, 3.0)
    weight = flow[:1].pow(2).sum(1, keepdim=True)
    with torch.no_grad():
        a = model(img, flow, weight)
        b = model(img, flow, weight)
        state = model.prepare(img)
        singles = torch.cat([model.frames(state, flow[i:i + 1], weight) for i in range(3)])
    assert torch.equal(a, b)
    assert torch.allclose(a, singles, atol=1e-6)
    assert not torch.allclose(a[0], a[1])


def test_backward_sample_is_exact_and_matches_opencv_remap():
    from backend.render.model import backward_sample

    img = _photo(6, 9)
    offset = torch.zeros(1, 2, 6, 9)
    offset[:, 0] = 2.0  # sample 2 px to the right: p + (2, 0); the last columns replicate the border
    out = backward_sample(img, offset)
    assert torch.allclose(out[..., :7], img[..., 2:], atol=1e-6)
    assert torch.allclose(out[..., 7:], img[..., 8:9].expand(-1, -1, -1, 2), atol=1e-6)
    assert torch.allclose(backward_sample(img, torch.zeros(1, 2, 6, 9)), img, atol=1e-6)
    # the same bilinear, border-replicating sampler as backend.flow.sample_at (OpenCV), on fractional offsets
    from backend.flow import sample_at

    img = _photo(40, 56)
    offset = torch.round(_smooth_flow(1, 40, 56, 4.0) * 32) / 32  # OpenCV samples on a 1/32 px grid
    ref = sample_at(img[0].permute(1, 2, 0).numpy(), offset[0].numpy())
    out = backward_sample(img, offset)[0].permute(1, 2, 0).numpy()
    assert np.abs(out - ref).max() < 1e-5


def test_source_inputs_start_at_zero_and_then_matter():
    """A checkpoint without the side input starts a source-inputs run that renders exactly what it did; once the
    side convolution is non-zero, the unwarped photo changes the frames."""
    torch.manual_seed(2)
    plain = build_renderer(TINY).eval()
    torch.nn.init.normal_(plain.decoder.head.weight, std=0.05)
    side_cfg = RendererConfig(channels=TINY.channels, source_inputs=True)
    side = build_renderer(side_cfg).eval()
    missing, extra = side.load_state_dict(plain.state_dict(), strict=False)
    assert sorted(missing) == ["decoder.side.bias", "decoder.side.weight"] and not extra
    img, flow = _photo(), _smooth_flow(2, 40, 56, 3.0)
    weight = flow[:1].pow(2).sum(1, keepdim=True)
    with torch.no_grad():
        assert torch.equal(plain(img, flow, weight), side(img, flow, weight))
        torch.nn.init.normal_(side.decoder.side.weight, std=0.1)
        assert not torch.allclose(plain(img, flow, weight), side(img, flow, weight), atol=1e-4)
    with pytest.raises(ValueError, match="pyramid"):
        RendererConfig(kind="baseline", source_inputs=True)
    with pytest.raises(ValueError, match="pyramid"):
        RendererConfig(kind="baseline", decoder_blocks=2)
    with pytest.raises(ValueError, match="decoder_blocks must be 1 to 8"):
        RendererConfig(decoder_blocks=0)
    with pytest.raises(ValueError, match="side input"):
        plain.decoder([torch.zeros(1, 9, 4, 4), torch.zeros(1, 7, 2, 2), torch.zeros(1, 9, 1, 1)],
                      torch.zeros(1, 8, 4, 4))
    old = RendererConfig.from_dict({"kind": "pyramid", "channels": [4, 6, 8]})  # a checkpoint from before both
    assert old.source_inputs is False and old.decoder_blocks == 1


def test_bad_inputs_say_what_is_wrong():
    model = build_renderer(TINY)
    img = _photo()
    with pytest.raises(ValueError, match="flow must have shape"):
        model(img, torch.zeros(1, 2, 10, 10), torch.zeros(1, 1, 10, 10))
    with pytest.raises(ValueError, match="weight must have shape"):
        model(img, torch.zeros(1, 2, 40, 56), torch.zeros(1, 2, 40, 56))
    with pytest.raises(ValueError, match="image must have shape"):
        model(img[:, :1], torch.zeros(1, 2, 40, 56), torch.zeros(1, 1, 40, 56))
    with pytest.raises(ValueError, match="unknown"):
        RendererConfig(kind="unet")


# ---------------------------------------------------------------------------------------------------- losses

def test_losses_and_metrics_are_exact():
    a = _photo(32, 32) * 0.8
    assert ssim(a, a).item() == pytest.approx(1.0, abs=1e-6)
    assert psnr(a, a + 0.1).item() == pytest.approx(20.0, abs=1e-4)  # mse 0.01
    assert gradient_l1(a, a + 0.3).item() == pytest.approx(0.0, abs=1e-7)  # a constant offset has no gradient
    assert ssim(a, 1.0 - a).item() < 0.0  # anti-correlated structure
    total, parts = render_loss(a, a)
    assert total.item() == pytest.approx(0.0, abs=1e-6) and parts["l1"] == 0.0
    # The MSE term (x100) adds exactly what it says: a constant offset of 0.1 has mse 0.01, l1 0.1, no gradient.
    only_mse = LossWeights(l1=0.0, ssim=0.0, gradient=0.0, mse=1.0)
    total, parts = render_loss(a, a + 0.1, only_mse)
    assert parts["mse"] == pytest.approx(0.01, rel=1e-5) and total.item() == pytest.approx(1.0, rel=1e-5)
    total, _ = render_loss(a, a + 0.1, LossWeights(l1=2.0, ssim=0.0, gradient=0.0, mse=0.5))
    assert total.item() == pytest.approx(2 * 0.1 + 0.5 * 100 * 0.01, rel=1e-5)


def test_loss_weights_parse():
    assert LossWeights.parse("") == LossWeights()
    assert LossWeights.parse("mse=1, l1=0.2") == LossWeights(l1=0.2, mse=1.0)
    for bad, message in [("mse", "name=value"), ("perceptual=1", "name=value"), ("l1=x", "not a number"),
                         ("l1=-1", ">= 0"), ("l1=nan", ">= 0"), ("l1=0,ssim=0,gradient=0", "positive")]:
        with pytest.raises(ValueError, match=message):
            LossWeights.parse(bad)


# ---------------------------------------------------------------------------------------------------- checkpoints

def test_checkpoint_round_trip_and_errors(tmp_path):
    torch.manual_seed(2)
    model = build_renderer(TINY)
    path = tmp_path / "r.pt"
    checkpoint.save(path, model, meta={"note": "x"})
    loaded, meta = checkpoint.load(path)
    assert meta["note"] == "x" and meta["model_id"].startswith("gid-renderer@")
    assert loaded.config == TINY
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
    with pytest.raises(ValueError, match="another config"):
        checkpoint.load(path, expect=RendererConfig(channels=(4, 6, 10)))
    with pytest.raises(FileNotFoundError, match="train_renderer"):
        checkpoint.load(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read"):
        checkpoint.load(tmp_path / "junk.pt")
    torch.save({"format": "something-else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not an image-dynamics renderer"):
        checkpoint.load(tmp_path / "other.pt")
    payload = checkpoint.read(path)
    payload["state_dict"].pop(next(iter(payload["state_dict"])))
    torch.save(payload, tmp_path / "cut.pt")
    with pytest.raises(ValueError, match="missing"):
        checkpoint.load(tmp_path / "cut.pt")


# ---------------------------------------------------------------------------------------------------- training

class _Pairs:
    """In-memory pairs: I_t is I_0 shifted by the flow (1 or 2 px) and brightened (something to learn)."""

    def __init__(self, n=6, h=24, w=32):
        self.items = []
        for i in range(n):
            g = torch.Generator().manual_seed(i)
            i0 = torch.rand(3, h, w, generator=g)
            dx = 1.0 + (i % 2)
            it = torch.roll(i0, shifts=int(dx), dims=-1) + 0.15
            flow = torch.zeros(2, h, w)
            flow[0] = dx
            self.items.append({"i0": i0, "it": it, "flow": flow, "weight": torch.full((h, w), dx * dx),
                               "t": 5, "group": "real:c" if i % 2 else "synth:s", "source": "test"})
        self.groups = [it["group"] for it in self.items]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def _cfg(**kw):
    base = dict(steps=8, batch_size=2, crop=16, lr=3e-3, log_every=1, checkpoint_seconds=0.0, seed=3)
    base.update(kw)
    return TrainConfig(**base)


def test_training_resumes_exactly_after_an_interruption(tmp_path, one_thread):
    data = _Pairs()
    torch.manual_seed(0)
    full = train(TINY, _cfg(), data, str(tmp_path / "full"))
    assert full["steps"] == 8

    class Stop(Exception):
        pass

    def stop_at_4(info):
        if info["step"] == 4:
            raise Stop

    with pytest.raises(Stop):
        train(TINY, _cfg(), data, str(tmp_path / "cut"), progress=stop_at_4)
    # Killed during step 4's report: the last checkpoint (written every step here) holds step 3.
    assert checkpoint.read(tmp_path / "cut" / "last.pt")["train"]["step"] == 3
    resumed = train(TINY, _cfg(), data, str(tmp_path / "cut"))
    assert resumed["steps"] == 8 and resumed["steps_this_run"] == 5
    a, _ = checkpoint.load(tmp_path / "full" / "renderer.pt")
    b, _ = checkpoint.load(tmp_path / "cut" / "renderer.pt")
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k]), k
    with pytest.raises(ValueError, match="another --out folder"):
        train(RendererConfig(channels=(4, 6)), _cfg(), data, str(tmp_path / "cut"))


def test_fine_tuning_starts_from_the_given_checkpoint(tmp_path, one_thread):
    data = _Pairs()
    train(TINY, _cfg(steps=6, lr=1e-2), data, str(tmp_path / "first"))
    start, _ = checkpoint.load(tmp_path / "first" / "renderer.pt")
    # A vanishing learning rate: a run started from the checkpoint ends (almost) where it started ...
    train(TINY, _cfg(steps=2, lr=1e-9), data, str(tmp_path / "tuned"), init=str(tmp_path / "first" / "renderer.pt"))
    tuned, _ = checkpoint.load(tmp_path / "tuned" / "renderer.pt")
    # ... while a fresh run does not.
    train(TINY, _cfg(steps=2, lr=1e-9), data, str(tmp_path / "fresh"))
    fresh, _ = checkpoint.load(tmp_path / "fresh" / "renderer.pt")
    ref = start.state_dict()
    assert all(torch.allclose(v, ref[k], atol=1e-6) for k, v in tuned.state_dict().items())
    assert not all(torch.allclose(v, ref[k], atol=1e-3) for k, v in fresh.state_dict().items())
    with pytest.raises(ValueError, match="another config"):
        train(RendererConfig(channels=(4, 6)), _cfg(), data, str(tmp_path / "other"),
              init=str(tmp_path / "first" / "renderer.pt"))
    # A checkpoint without the side input, or with fewer decoder blocks, starts a run with them, rendering what the
    # checkpoint rendered.
    img, flow = _photo(), _smooth_flow(1, 40, 56, 3.0)
    weight = flow.pow(2).sum(1, keepdim=True)
    for name, grown in (("side", {"source_inputs": True}), ("deep", {"decoder_blocks": 3}),
                        ("both", {"source_inputs": True, "decoder_blocks": 2})):
        cfg = RendererConfig(channels=TINY.channels, **grown)
        train(cfg, _cfg(steps=2, lr=1e-9), data, str(tmp_path / name), init=str(tmp_path / "first" / "renderer.pt"))
        model, _ = checkpoint.load(tmp_path / name / "renderer.pt")
        assert model.config == cfg
        with torch.no_grad():
            assert torch.allclose(model(img, flow, weight), start(img, flow, weight), atol=1e-5), name
    for name, back in (("side", TINY), ("deep", RendererConfig(channels=TINY.channels, decoder_blocks=2))):
        with pytest.raises(ValueError, match="another config"):  # but not the other way round
            train(back, _cfg(), data, str(tmp_path / f"back_{name}"), init=str(tmp_path / name / "renderer.pt"))


def test_training_lowers_the_loss(one_thread):
    data = _Pairs()
    losses = []
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        train(TINY, _cfg(steps=40, lr=1e-2, grad_clip=0.0, log_every=5, checkpoint_seconds=600.0), data, tmp, progress=lambda i: losses.append(i["loss"]))
    assert losses[-1] < 0.9 * losses[0], losses


# ---------------------------------------------------------------------------------------------------- shipped

def test_shipped_renderer_reproduces_the_photo_without_motion():
    """After training, zero motion must still give the photo back (PSNR bound) on a real photo."""
    from PIL import Image

    assert os.path.isfile(checkpoint.DEFAULT_CHECKPOINT), "the default renderer checkpoint must ship"
    assert os.path.getsize(checkpoint.DEFAULT_CHECKPOINT) <= 25 * 2 ** 20
    model, meta = checkpoint.load()
    photo = os.path.join(os.path.dirname(__file__), "..", "backend", "assets", "sample_flower.jpg")
    frame = Image.open(photo).convert("RGB").resize((256, 160), Image.BICUBIC)
    img = torch.from_numpy(np.array(frame)).permute(2, 0, 1)[None].float() / 255.0
    with torch.no_grad():
        out = model(img, torch.zeros(1, 2, 160, 256), torch.zeros(1, 1, 160, 256)).clamp(0, 1)
    assert psnr(out, img).item() > 35.0
    assert math.isfinite(meta.get("val_real_psnr", float("nan")))


def test_train_script_trains_validates_on_held_out_pairs_and_fine_tunes(tmp_path, one_thread, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_renderer", os.path.join(
        os.path.dirname(__file__), "..", "scripts", "train_renderer.py"))
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    rng = np.random.default_rng(0)
    n, h, w = 4, 24, 32
    i0 = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    np.savez(tmp_path / "pairs.npz", i0=i0, it=np.roll(i0, 1, axis=2), flow=np.full((n, 2, h, w), 0.5, np.float16),
             weight=np.full((n, h, w), 0.5, np.float32), t=np.arange(1, n + 1), group=np.array(["real:a"] * n))
    base = ["--pairs", str(tmp_path / "pairs.npz"), "--val-pairs", str(tmp_path / "pairs.npz"), "--steps", "3",
            "--batch", "2", "--crop", "16", "--channels", "4,6,8", "--log-every", "1"]
    assert script.main(base + ["--out", str(tmp_path / "a")]) == 0
    _, meta = checkpoint.load(tmp_path / "a" / "renderer.pt")
    assert math.isfinite(meta["val_real_psnr"]) and meta["datasets"][-1]["val_pairs"] == n
    assert script.main(base + ["--out", str(tmp_path / "b"), "--init", str(tmp_path / "a" / "renderer.pt"),
                               "--loss", "mse=1,l1=0.2"]) == 0
    _, meta = checkpoint.load(tmp_path / "b" / "renderer.pt")
    assert meta["init"]["model_id"] == checkpoint.model_id(tmp_path / "a" / "renderer.pt")
    assert meta["train_config"]["loss"] == {"l1": 0.2, "ssim": 0.5, "gradient": 0.5, "mse": 1.0}
    capsys.readouterr()
    assert script.main(base + ["--out", str(tmp_path / "c"), "--channels", "4,6",
                               "--init", str(tmp_path / "a" / "renderer.pt")]) == 2
    assert "another config" in capsys.readouterr().err
    assert script.main(base + ["--out", str(tmp_path / "d"), "--init", str(tmp_path / "missing.pt")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    assert script.main(base + ["--out", str(tmp_path / "si"), "--source-inputs", "--decoder-blocks", "2",
                               "--init", str(tmp_path / "a" / "renderer.pt")]) == 0
    model, _ = checkpoint.load(tmp_path / "si" / "renderer.pt")
    assert model.config.source_inputs and model.config.decoder_blocks == 2
    capsys.readouterr()
    assert script.main(base + ["--out", str(tmp_path / "sb"), "--kind", "baseline", "--source-inputs"]) == 2
    assert "pyramid" in capsys.readouterr().err
    assert script.main(base + ["--out", str(tmp_path / "e"), "--loss", "perceptual=1"]) == 2
    assert "name=value" in capsys.readouterr().err
    # --min-flow-fidelity drops training pairs whose flow does not explain their frames (here: all of them)
    fidelity = NpzPairs(str(tmp_path / "pairs.npz")).fidelity(0)
    assert 0.0 < fidelity < 20.0  # random pixels rolled by 1 px, flow says 0.5 px
    assert len(NpzPairs(str(tmp_path / "pairs.npz"), min_flow_fidelity=fidelity - 1.0)) == n
    assert script.main(base + ["--out", str(tmp_path / "f"), "--min-flow-fidelity", "30"]) == 2
    assert "training set is empty" in capsys.readouterr().err
