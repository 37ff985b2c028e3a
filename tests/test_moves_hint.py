"""The "moves here" hint end to end: the predictor gates and (for models trained with hints) conditions on it, the
CLI's ``--moves`` and the service's ``moves`` field carry it, bad hints are refused with a clear message and
nothing written, and the hint is part of the cache key."""
import numpy as np
import pytest
from fastapi.testclient import TestClient

from backend import cli
from backend.motion.hint import GENTLE, HintError, check_hint, floor_inside
from backend.motion.predictor import PredictParams, tiny_predictor
from service_helpers import b64, encode, make_app, photo, predict_body, wait_state

PARAMS = PredictParams(steps=2, seed=3)


def _amplitude(coeffs: np.ndarray) -> np.ndarray:
    """RMS displacement over the loop about the mean (k >= 1), (H, W)."""
    return np.sqrt((coeffs[1:] ** 2).sum(axis=(0, 1)) / 2)


def test_hint_keeps_outside_still_and_grey_scales_the_motion():
    p = tiny_predictor(seed=0)
    img = photo(120, 90, seed=1)
    free = p.predict(img, PARAMS).coeffs
    left = np.zeros((9, 12), np.float32)
    left[:, :6] = 1.0  # the left half of the photo moves (any size: stretched over the photo)
    hinted = p.predict(img, PARAMS, moves=left)
    amp = _amplitude(hinted.coeffs)
    w = amp.shape[1]
    inside, outside = amp[:, : w // 2 - 4].mean(), amp[:, w // 2 + 4:].mean()
    assert outside <= 0.1 * inside, (inside, outside)
    assert hinted.provenance["hint"] == 1 and p.predict(img, PARAMS).provenance["hint"] == 0
    grey = p.predict(img, PARAMS, moves=np.full((4, 4), 0.5, np.float32)).coeffs
    np.testing.assert_allclose(grey, 0.5 * free, rtol=1e-5, atol=1e-7)  # the tiny model has no hint input: gate only
    white = p.predict(img, PARAMS, moves=np.ones((2, 2), np.float32)).coeffs
    np.testing.assert_allclose(white, free, rtol=1e-6, atol=1e-9)


def test_a_painted_area_predicted_too_still_to_see_is_raised_to_just_visible():
    import torch

    from addon.core.heat import gentle_motion_note
    from addon.core.spectral import mean_square_displacement

    h, w = 40, 64
    c = np.zeros((2, 16, 4, h, w), np.float32)
    c[:, 3, 0, :, :32] = np.linspace(0.0, 1.0, 32)    # motion grows to the right inside the left half
    c[0] *= 0.001                                      # photo 0: far too small to see; photo 1: visible
    hint = torch.zeros(1, 1, h, w)
    hint[..., :32] = 1.0
    out, gain = floor_inside(torch.from_numpy(c), hint)
    out = out.numpy()
    rms = np.sqrt(mean_square_displacement(out))
    assert np.percentile(rms[0][:, :32], 99) == pytest.approx(GENTLE * h, rel=1e-4)  # just visible, no more
    assert gain[0] > 100 and gain[1] == 1.0
    np.testing.assert_allclose(out[0], c[0] * float(gain[0]), rtol=1e-6)  # one factor: pattern and spectrum kept
    np.testing.assert_array_equal(out[1], c[1])                          # visible already: untouched
    assert gentle_motion_note(c[0]) and gentle_motion_note(c[1]) == ""  # as the add-on's own measure tells them
    zero = torch.zeros(1, 16, 4, h, w)
    assert floor_inside(zero, hint)[1].item() == 1.0 and not floor_inside(zero, hint)[0].any()  # nothing to raise
    same, ones = floor_inside(torch.from_numpy(c), None)
    assert same is not None and ones.tolist() == [1.0, 1.0]                                   # automatic: as is
    grey = torch.full((1, 1, h, w), 0.5)
    assert floor_inside(torch.from_numpy(c), grey)[1].tolist() == [1.0, 1.0]  # grey = "less", not "moves"


@pytest.mark.parametrize("bad, words", [
    (np.zeros((8, 8), np.float32), "black everywhere"),
    (np.ones((1, 8), np.float32), "at least 2x2"),
    (np.full((4, 4), 2.0, np.float32), "in \\[0, 1\\]"),
    (np.full((4, 4), np.nan, np.float32), "in \\[0, 1\\]"),
])
def test_unusable_hints_are_refused_with_what_to_do(bad, words):
    with pytest.raises(HintError, match=words):
        check_hint(bad)
    with pytest.raises(ValueError, match=words):
        tiny_predictor().predict(photo(), PARAMS, moves=bad)


def test_cli_moves_option(tmp_path, capsys):
    from PIL import Image

    src = tmp_path / "photo.png"
    Image.fromarray(photo(96, 64, seed=2)).save(src)
    mask = np.zeros((10, 30), np.uint8)
    mask[:5] = 255  # the top half moves
    Image.fromarray(mask).save(tmp_path / "top.png")
    out = tmp_path / "v.npz"
    assert cli.main(["predict", str(src), "-o", str(out), "--model", "tiny", "--steps", "2", "--moves",
                     str(tmp_path / "top.png"), "-q"]) == 0
    from addon.core.spectral import load_npz

    vol = load_npz(str(out))
    amp = _amplitude(vol.coeffs)
    h = amp.shape[0]
    assert amp[h // 2 + 3:].mean() <= 0.1 * amp[: h // 2 - 3].mean()
    assert vol.provenance["hint"] == 1

    (tmp_path / "notimage.png").write_bytes(b"this is not an image")
    (tmp_path / "empty.png").write_bytes(b"")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "black.png")
    Image.new("L", (9000, 8000)).save(tmp_path / "bomb.png")  # 72 MP of black: a small file, a huge decode
    for bad, words in [("notimage.png", "not a readable image"), ("empty.png", "not a readable image"),
                       ("black.png", "black everywhere"), ("bomb.png", "at most 64,000,000"),
                       ("missing.png", "does not exist")]:
        target = tmp_path / f"out_{bad}.npz"
        assert cli.main(["predict", str(src), "-o", str(target), "--model", "tiny", "--steps", "2", "--moves",
                         str(tmp_path / bad), "-q"]) == 2
        assert words in capsys.readouterr().err
        assert not target.exists()  # nothing written
    assert cli.main(["predict", str(tmp_path), "--model", "tiny", "--moves", str(tmp_path / "top.png"), "-q"]) == 2
    assert "applies to one photo" in capsys.readouterr().err


@pytest.fixture
def client(tmp_path):
    with TestClient(make_app(tmp_path, max_pixels=10_000)) as c:
        yield c


def test_service_moves_field_gates_the_result_and_is_part_of_the_cache_key(client):
    from addon.core.spectral import volume_from_arrays

    img = encode(photo(64, 40, seed=4))

    def run(**extra):
        job = client.post("/v1/jobs/predict", json={**predict_body(img), **extra}).json()
        assert wait_state(client, job["id"])["state"] == "done", job
        import io

        with np.load(io.BytesIO(client.get(f"/v1/jobs/{job['id']}/result").content), allow_pickle=False) as z:
            return job, volume_from_arrays({k: z[k] for k in z.files})

    _, free = run()
    left = np.zeros((20, 32), np.uint8)
    left[:, :16] = 255
    job, hinted = run(moves=b64(encode(left)))
    assert not job["cached"]
    amp = _amplitude(hinted.coeffs)
    w = amp.shape[1]
    assert amp[:, w // 2 + 3:].mean() <= 0.1 * amp[:, : w // 2 - 3].mean()
    again, _ = run(moves=b64(encode(left)))
    assert again["cached"]
    other, _ = run(moves=b64(encode(255 - left)))
    assert not other["cached"]
    import backend.motion.hint as hint_rules

    old = hint_rules.HINT_RULES  # results made under other rules for hints are not served from the cache
    hint_rules.HINT_RULES = old + 1
    try:
        assert not run(moves=b64(encode(left)))[0]["cached"]
    finally:
        hint_rules.HINT_RULES = old
    assert run()[0]["cached"]  # without a hint the rules do not matter


@pytest.mark.parametrize("moves, status, code", [
    (b64(b"not an image"), 422, "invalid_moves"),
    (b64(encode(np.zeros((8, 8), np.uint8))), 422, "invalid_moves"),  # black everywhere: nothing would move
    ("%%%", 422, "invalid_base64"),
    (b64(encode(np.full((200, 200), 255, np.uint8))), 413, "too_many_pixels"),  # over max_pixels (a bomb)
])
def test_service_refuses_bad_hints_with_the_documented_error(client, moves, status, code):
    r = client.post("/v1/jobs/predict", json={**predict_body(encode(photo())), "moves": moves})
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert "moves" in r.json()["error"]["message"]
