"""Bad input gets the documented 4xx with a JSON error body, and the service keeps serving afterwards."""
import struct
import zlib

import pytest
from fastapi.testclient import TestClient

from service_helpers import b64, encode, make_app, photo, predict_body, wait_state


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    app = make_app(tmp_path_factory.mktemp("bad"), max_upload_bytes=200_000, max_pixels=1_000_000)
    with TestClient(app) as c:
        yield c


@pytest.fixture(autouse=True)
def still_serving(client):
    yield
    assert client.get("/v1/health").status_code == 200


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG whose header claims width x height but whose data is a few bytes: a decompression bomb."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(
        b"IEND", b"")


def _error(response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert len(body["error"]["message"]) > 20
    return body["error"]["message"]


def test_non_image_bytes(client):
    msg = _error(client.post("/v1/jobs/predict", json=predict_body(b"just some text, not a photo")), 422,
                 "invalid_image")
    assert "PNG, JPEG" in msg


def test_empty_body(client):
    _error(client.post("/v1/jobs/predict"), 422, "missing_body")
    _error(client.post("/v1/jobs/predict", content=b"", headers={"content-type": "application/json"}), 422,
           "missing_body")


def test_empty_image_and_bad_base64(client):
    assert "image" in _error(client.post("/v1/jobs/predict", json={"image": ""}), 422, "invalid_request")
    _error(client.post("/v1/jobs/predict", json={"image": "@@not base64@@"}), 422, "invalid_base64")


def test_decompression_bomb_png_header(client):
    # 100000 x 100000 is past Pillow's own bomb limit; 2000 x 1000 is past this service's max_pixels
    _error(client.post("/v1/jobs/predict", json=predict_body(_png_header_only(100_000, 100_000))), 413,
           "too_many_pixels")
    msg = _error(client.post("/v1/jobs/predict", json=predict_body(_png_header_only(2000, 1000))), 413,
                 "too_many_pixels")
    assert "2000x1000" in msg and "1,000,000" in msg


def test_truncated_jpeg(client):
    jpeg = encode(photo(128, 96), "JPEG", quality=90)
    _error(client.post("/v1/jobs/predict", json=predict_body(jpeg[: len(jpeg) // 2])), 422, "invalid_image")


def test_truncated_png(client):
    png = encode(photo(128, 96))
    _error(client.post("/v1/jobs/predict", json=predict_body(png[: len(png) // 2])), 422, "invalid_image")


def test_malformed_json(client):
    msg = _error(client.post("/v1/jobs/predict", content=b'{"image": "abc", "params": {',
                             headers={"content-type": "application/json"}), 422, "invalid_json")
    assert "JSON" in msg
    _error(client.post("/v1/models", content=b"[1, 2", headers={"content-type": "application/json"}), 422,
           "invalid_json")


def test_wrong_fields_name_the_field(client):
    data = encode(photo())
    assert "params.steps" in _error(client.post("/v1/jobs/predict", json=predict_body(data, steps=0)), 422,
                                    "invalid_request")
    assert "params.guidance" in _error(client.post("/v1/jobs/predict", json=predict_body(data, guidance="x")),
                                       422, "invalid_request")
    assert "colour" in _error(client.post("/v1/jobs/predict", json={"image": b64(data), "colour": 1}), 422,
                              "invalid_request")
    _error(client.post("/v1/jobs/predict", json=["not", "an", "object"]), 422, "invalid_request")


def test_16_bit_greyscale_and_alpha_images_are_accepted(client):
    import io

    import numpy as np
    from PIL import Image

    grey16 = (np.arange(40 * 64, dtype=np.uint16).reshape(40, 64) * 25).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(grey16).save(buf, "PNG")
    from backend.service.images import decode_image

    decoded = decode_image(buf.getvalue(), 10_000, 1024).pixels  # scaled, not clipped at 255
    assert np.array_equal(decoded[..., 0], np.round(grey16 / 257.0).astype(np.uint8))
    assert np.array_equal(decoded[..., 0], decoded[..., 2])
    rgba = np.concatenate([photo(), np.full((40, 64, 1), 128, np.uint8)], axis=2)
    assert np.array_equal(decode_image(encode(rgba), 10_000, 1024).pixels, photo())  # alpha dropped
    for data in (buf.getvalue(), encode(rgba)):
        job = client.post("/v1/jobs/predict", json=predict_body(data))
        assert job.status_code == 202, job.text
        assert wait_state(client, job.json()["id"])["state"] == "done"


def test_image_too_small(client):
    assert "8x8" in _error(client.post("/v1/jobs/predict", json=predict_body(encode(photo(8, 8)))), 422,
                           "image_too_small")


def test_unknown_model(client):
    body = {**predict_body(encode(photo())), "model": "no-such-model@123"}
    msg = _error(client.post("/v1/jobs/predict", json=body), 422, "unknown_model")
    assert "tiny-random@seed0" in msg  # names what is loaded
    _error(client.delete("/v1/models/no-such-model@123"), 404, "unknown_model")
    _error(client.post("/v1/models", json={"source": "/nonexistent/model.pt"}), 422, "invalid_model")


def test_unknown_job_id(client):
    for method, path in (("GET", "/v1/jobs/feedface"), ("POST", "/v1/jobs/feedface/cancel"),
                         ("GET", "/v1/jobs/feedface/result"), ("GET", "/v1/jobs/feedface/files"),
                         ("GET", "/v1/jobs/feedface/files/x.png")):
        _error(client.request(method, path), 404, "unknown_job")


def test_upload_too_large(client):
    big = encode(photo(400, 400))  # ~480 KB of noise, base64 ~640 KB > 200 KB
    msg = _error(client.post("/v1/jobs/predict", json=predict_body(big)), 413, "upload_too_large")
    assert "--max-upload-mb" in msg

    def chunks():  # no Content-Length: the limit applies while the body streams in
        for _ in range(50):
            yield b"x" * 10_000
    _error(client.post("/v1/jobs/predict", content=chunks(), headers={"content-type": "application/json"}), 413,
           "upload_too_large")


def test_unknown_routes_and_methods(client):
    _error(client.get("/v1/nothing-here"), 404, "not_found")
    assert "predict" in _error(client.post("/v1/jobs/teleport", json={}), 404, "unknown_job_kind")
    _error(client.put("/v1/health"), 405, "method_not_allowed")


def test_a_good_job_still_runs_after_all_that(client):
    job = client.post("/v1/jobs/predict", json=predict_body(encode(photo()))).json()
    assert wait_state(client, job["id"])["state"] == "done"
