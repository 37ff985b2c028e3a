"""The photo library of the procedural scenes: the curated index, the exclusion of the evaluation photos, the
builder, and scenes with a photo backdrop (zero motion there, recorded photos, deterministic)."""
import csv
import json
import os
import pathlib
import subprocess

import cv2
import numpy as np
import pytest

from backend.data.photo_library import (PACKAGES, ROLES, PhotoLibraryError, dhash, hamming, open_library,
                                        read_index)
from backend.data.scene_render import render_clip, render_window
from backend.data.scenes import SceneConfig, build_scene
from photo_helpers import ROLES as MADE_UP, build_photo_library, make_library, picture, write_sources

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
# The evaluation photos of shared/data/photos that come from these packages (shared/data/MANIFEST.tsv)
EVAL_SOURCES = {
    "lomiri_aitzgorri_meadow_trees.jpg": "/usr/share/backgrounds/aitzgorri_by_Aitzol_Berasategi.jpg",
    "lomiri_life_forest_stream.jpg": "/usr/share/backgrounds/life_by_Aitzol_Berasategi.jpg",
    "lomiri_picosdeeuropa_grass_path.jpg": "/usr/share/backgrounds/picosdeeuropa_by_Aitzol_Berasategi.jpg",
    "mate_fresh_flower.jpg": "/usr/share/backgrounds/mate/nature/FreshFlower.jpg",
    "mate_garden_flower.jpg": "/usr/share/backgrounds/mate/nature/Garden.jpg",
    "mate_green_meadow_grass.jpg": "/usr/share/backgrounds/mate/nature/GreenMeadow.jpg",
    "mate_ladybird_forgetmenot.jpg": "/usr/share/backgrounds/mate/nature/LadyBird.jpg",
    "mate_raindrops_leaves.jpg": "/usr/share/backgrounds/mate/nature/RainDrops.jpg",
    "mate_yellow_flower.jpg": "/usr/share/backgrounds/mate/nature/YellowFlower.jpg",
    "plasma_bythewater_dock.jpg": "/usr/share/wallpapers/BytheWater/contents/images/2560x1600.jpg",
    "plasma_onestandsout_moss.jpg": "/usr/share/wallpapers/OneStandsOut/contents/images/2560x1600.jpg",
}
TINY = dict(width=96, height=60, num_frames=150, fps=30.0, k=16, max_bin=15)


def _installed(pkg: str) -> bool:
    try:
        return subprocess.run(["dpkg", "-s", pkg], capture_output=True).returncode == 0
    except OSError:
        return False


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return str(make_library(tmp_path_factory.mktemp("photos")))


# ------------------------------------------------------------------------------------------------ the curated index
def test_curated_index_is_valid_and_every_photo_has_a_licence_and_a_role():
    entries = read_index()
    assert len(entries) >= 100  # every picture of the four packages is curated, used or not
    for e in entries:
        assert e.licence and e.copyright is not None and e.note, e.name
        assert e.roles and set(e.roles) <= set(ROLES), e.name
        assert any(e.package.startswith(p.rsplit("-", 1)[0]) for p in PACKAGES), e.package
    used = [e for e in entries if e.used]
    counts = {role: sum(role in e.roles for e in used) for role in ROLES[:-1]}
    assert counts["backdrop"] >= 10 and counts["foliage"] >= 4 and counts["petal"] >= 3, counts
    assert len({e.sha256 for e in used}) == len(used)  # no picture twice
    # plants, flowers, grass and moving water are never a still backdrop: the curation notes say so
    for e in used:
        if "backdrop" in e.roles:
            assert not any(w in e.note for w in ("plants", "flower", "grass in", "reeds")), e.name


def test_evaluation_photos_are_excluded_by_name_hash_and_picture():
    entries = {e.source: e for e in read_index()}
    for photo, source in EVAL_SOURCES.items():
        assert source in entries and not entries[source].used, f"{source} ({photo}) must be curated as exclude"
        assert photo in entries[source].note
    used = [e for e in entries.values() if e.used]
    assert not {os.path.basename(e.source) for e in used if "/wallpapers/" not in e.source} & {
        os.path.basename(s) for s in EVAL_SOURCES.values() if "/wallpapers/" not in s}
    if not (SHARED / "photos").is_dir():
        pytest.skip("shared/data/photos is not beside the repository")
    photos = sorted((SHARED / "photos").iterdir())
    assert len(photos) == 13
    for path in photos:  # the pictures themselves: no used entry is a copy of one at any size
        h = dhash(cv2.imread(str(path))[..., ::-1])
        assert min(hamming(h, e.dhash) for e in used) > 10, path.name
        if path.name in EVAL_SOURCES:
            assert hamming(h, entries[EVAL_SOURCES[path.name]].dhash) <= 4, path.name  # and the hash finds them
    with open(SHARED / "MANIFEST.tsv", newline="") as fh:  # every Debian-sourced photo is in EVAL_SOURCES
        debian = [r[0].split("/")[-1] for r in csv.reader(fh, delimiter="\t")
                  if r and r[0].startswith("photos/") and r[1].startswith("debian:") and "opencv" not in r[1]]
    assert sorted(debian) == sorted(EVAL_SOURCES)


def test_index_rows_are_checked(tmp_path):
    index = write_sources(tmp_path / "src", {"stone": "backdrop"})
    good = index.read_text()
    index.write_text(good.replace("\tbackdrop\t", "\tsky\t"))
    with pytest.raises(PhotoLibraryError, match="roles 'sky'"):
        read_index(str(index))
    index.write_text(good.replace("CC0-1.0", ""))
    with pytest.raises(PhotoLibraryError, match="needs a licence"):
        read_index(str(index))
    index.write_text(good.replace("\tbackdrop\t", "\texclude,backdrop\t"))
    with pytest.raises(PhotoLibraryError, match="must be 'exclude'"):
        read_index(str(index))


# ------------------------------------------------------------------------------------------------ the builder
def test_builder_copies_used_photos_and_refuses_changed_or_evaluation_pictures(tmp_path, capsys):
    index = write_sources(tmp_path / "src")
    out = tmp_path / "lib"
    assert build_photo_library.build(str(out), str(index), 200, str(tmp_path / "none")) == 0
    meta = json.loads((out / "index.json").read_text())
    names = {p["name"] for p in meta["photos"]}
    assert names == {f"test_{n}" for n, r in MADE_UP.items() if r != "exclude"}  # the graphic is left out
    for p in meta["photos"]:
        img = cv2.imread(str(out / p["file"]))
        assert max(img.shape[:2]) == 200 and p["licence"] == "CC0-1.0"
    assert meta["counts"]["roles"] == {"backdrop": 4, "foliage": 2, "petal": 2}
    # a source that changed since curation is reported and left out
    cv2.imwrite(str(tmp_path / "src" / "stone.png"), picture(99))
    assert build_photo_library.build(str(out), str(index), 200, str(tmp_path / "none")) == 0
    assert "skipped test_stone: its file changed" in capsys.readouterr().err
    assert "test_stone" not in {p["name"] for p in json.loads((out / "index.json").read_text())["photos"]}
    # a used picture that is (a resized copy of) an evaluation photo stops the build
    evals = tmp_path / "eval"
    evals.mkdir()
    cv2.imwrite(str(evals / "held_out.jpg"), cv2.resize(picture(1), (450, 300))[..., ::-1])  # the "sky" source
    with pytest.raises(SystemExit, match="'test_sky' .* is the evaluation photo held_out.jpg"):
        build_photo_library.build(str(tmp_path / "lib2"), str(index), 200, str(evals))
    # a missing source names the set-up step
    for png in (tmp_path / "src").glob("*.png"):
        png.unlink()
    assert build_photo_library.build(str(tmp_path / "lib3"), str(index), 200, str(evals)) == 2
    assert "setup_photo_library.sh" in capsys.readouterr().err


def test_missing_library_is_a_clear_error(tmp_path):
    with pytest.raises(PhotoLibraryError, match="setup_photo_library.sh"):
        build_scene(SceneConfig(**TINY, photo_library=str(tmp_path / "nowhere")))
    (tmp_path / "index.json").write_text('{"format": "something else"}')
    with pytest.raises(PhotoLibraryError, match="not a photo library"):
        open_library(str(tmp_path))


# ------------------------------------------------------------------------------------------------ photo scenes
def test_photo_backdrop_never_moves(library):
    """Every backdrop pixel has exactly zero motion in the volume and the flows, and keeps its colour in every
    frame where no object covers it; the photos used are recorded with their licences."""
    for seed, kind in ((1, "meadow"), (2, "tree"), (3, "cloth"), (4, "candle"), (5, "flowers")):
        scene = build_scene(SceneConfig(seed=seed, kind=kind, amplitude_px=10.0, photo_library=library,
                                        photo_fraction=1.0, **TINY))
        assert scene.info["background"] == "photo" and scene.backdrop.kind == "photo"
        uses = {u["use"] for u in scene.info["photos"]}
        assert "backdrop" in uses and all(u["licence"] == "CC0-1.0" for u in scene.info["photos"])
        win = render_window(scene, [30, 77])
        d = scene_objects_owner(scene)
        backdrop = d < 0
        assert backdrop.mean() > 0.2
        assert not win.coeffs[:, :, backdrop].any() and not win.flows[:, :, backdrop].any()
        frames = render_clip(scene, num_frames=40)
        covered = np.zeros(backdrop.shape, bool)
        for t in range(0, 40, 3):  # pixels no object reaches at any sampled frame keep their colour
            covered |= (np.abs(frames[t].astype(int) - frames[0]).sum(-1) > 0)
        assert (backdrop & ~covered).mean() > 0.15
        assert np.array_equal(frames[39][backdrop & ~covered], win.photo[backdrop & ~covered])


def scene_objects_owner(scene):
    """Object id under each pixel centre at frame 0 (-1: backdrop)."""
    from backend.data.scene_render import Drawables

    d = Drawables(scene.objects, np.zeros(1))
    cfg = scene.config
    return d.draw(scene.backdrop.image, 0, cfg.width, cfg.height, scene.textures, False)[1].reshape(cfg.height,
                                                                                                    cfg.width)


def test_still_photo_scenes_have_zero_motion(library):
    scenes = [build_scene(SceneConfig(seed=s, kind="static", photo_library=library, **TINY)) for s in range(6)]
    assert all(sc.backdrop.kind == "photo" and sc.static for sc in scenes)
    assert any(not sc.objects for sc in scenes)  # mostly nothing procedural in front of the photo
    for sc in scenes[:3]:
        win = render_window(sc, [50])
        assert not win.coeffs.any() and not win.moving_mask.any() and np.array_equal(win.frames[0], win.photo)


def test_photo_scenes_are_deterministic_and_keep_the_procedural_layout(library):
    cfg = dict(seed=21, kind="flowers", photo_library=library, **TINY)
    a, b = (render_window(build_scene(SceneConfig(**cfg)), [12]) for _ in range(2))
    assert np.array_equal(a.photo, b.photo) and np.array_equal(a.coeffs, b.coeffs)
    assert np.array_equal(a.frames, b.frames)
    assert build_scene(SceneConfig(**cfg)).info["photos"] == build_scene(SceneConfig(**cfg)).info["photos"]
    other = render_window(build_scene(SceneConfig(**dict(cfg, seed=22))), [12])
    assert not np.array_equal(a.photo, other.photo)
    # the photos come from their own random stream: same objects and motion as without a library
    plain = render_window(build_scene(SceneConfig(**dict(cfg, photo_library=None))), [12])
    np.testing.assert_array_equal(a.coeffs, plain.coeffs)
    assert not np.array_equal(a.photo, plain.photo)


def test_library_is_loaded_once_per_process(library):
    assert open_library(library) is open_library(library)
    lib = open_library(library)
    assert len(lib) == 7 and all(p.image.dtype == np.uint8 and max(p.image.shape[:2]) <= 320 for p in lib.photos)
    card = lib.card(["test_sky", "test_leaves"])
    assert card == [{"name": "test_sky", "package": "made-up", "licence": "CC0-1.0", "copyright": "the tests",
                     "roles": ["backdrop"]},
                    {"name": "test_leaves", "package": "made-up", "licence": "CC0-1.0", "copyright": "the tests",
                     "roles": ["foliage"]}]
    rng = np.random.default_rng(0)
    crop = lib.crop(rng, lib.by_role["backdrop"][0], 128, 80)
    assert crop.shape == (80, 128, 3) and crop.dtype == np.float32 and 0 <= crop.min() and crop.max() <= 1


# ------------------------------------------------------------------------------------------------ Debian's photos
@pytest.mark.skipif(not all(_installed(p) for p in PACKAGES),
                    reason="the wallpaper packages are not installed (scripts/setup_photo_library.sh)")
def test_real_library_builds_and_holds_no_evaluation_photo(tmp_path):
    out = tmp_path / "lib"
    assert build_photo_library.main([str(out), "--eval-photos", str(SHARED / "photos")]) == 0
    meta = json.loads((out / "index.json").read_text())
    used = [e for e in read_index() if e.used]
    assert meta["counts"]["photos"] == len(used)
    evals = [dhash(cv2.imread(str(p))[..., ::-1]) for p in sorted((SHARED / "photos").glob("*.jpg"))]
    for p in meta["photos"]:
        img = cv2.imread(str(out / p["file"]))
        assert max(img.shape[:2]) == 640
        assert not any(hamming(dhash(img[..., ::-1]), h) <= 10 for h in evals), p["name"]
        assert os.path.basename(p["source"]) not in {os.path.basename(s) for s in EVAL_SOURCES.values()} or \
            "/wallpapers/" in p["source"]
    scene = build_scene(SceneConfig(seed=3, kind="mixed", photo_library=str(out), photo_fraction=1.0))
    assert scene.info["background"] == "photo" and scene.info["photos"]
