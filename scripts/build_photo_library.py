"""Build the photo library of the procedural scenes from Debian's installed wallpaper packages.

    .venv/bin/python scripts/build_photo_library.py OUT_DIR [--max-side 640] [--eval-photos ../shared/data/photos]
    .venv/bin/python scripts/build_photo_library.py --survey DIR   # re-curation: contact sheets + a draft index

Build: every photo of the curated index (``backend/data/photo_library.tsv``) whose roles are not ``exclude`` is
read from its installed path, checked against its recorded sha256 (a changed package is reported, not used),
checked against the evaluation photos (a copy of one at any size is refused), resized to ``--max-side`` (area
filter) and written as ``OUT_DIR/<name>.jpg``; ``OUT_DIR/index.json`` lists them with package, licence, copyright,
roles and note. ``scripts/setup_photo_library.sh`` installs the packages first.

Survey: every image file of the packages (one per wallpaper and variant: the largest landscape picture), its
licence and copyright read from ``/usr/share/doc/<pkg>/copyright`` (plasma: the wallpaper's metadata), hashes, and
contact sheets ``sheet_NN.png`` to look at; ``draft.tsv`` has the index's columns with roles to fill in.
"""
from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import subprocess
import sys
import time

import cv2
import numpy as np
from PIL import Image

from addon.core.files import atomic_path, file_digest
from backend.data.photo_library import COLUMNS, FORMAT, INDEX, PACKAGES, dhash, hamming, read_index

# binary packages that ship the pictures (lomiri-wallpapers depends on the two that hold its photos)
SHIPPING = {"lomiri-wallpapers": ("lomiri-wallpapers", "lomiri-wallpapers-16.04", "lomiri-wallpapers-20.04")}
PREFIX = {"mate-backgrounds": "mate", "plasma-workspace-wallpapers": "plasma", "gnome-backgrounds": "gnome",
          "lomiri-wallpapers": "lomiri"}
IMAGE_EXT = (".jpg", ".jpeg", ".png", ".webp", ".svg", ".jxl")
EVAL_PHOTOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "photos")
SAME_PHOTO_BITS = 8  # dhash distance at or below which two pictures are taken for one photo


def sha256(path: str) -> str:
    return file_digest(path, 64)


def read_rgb(path: str, min_side: int = 0) -> np.ndarray | None:
    """RGB uint8 of an image file; with ``min_side`` a JPEG is decoded at 1/2, 1/4 or 1/8 scale when its longest
    side stays at least that long (much faster for the 4-6k pixel wallpapers)."""
    flag = cv2.IMREAD_COLOR
    if min_side and path.lower().endswith((".jpg", ".jpeg")):
        try:
            with Image.open(path) as im:
                longest = max(im.size)
        except OSError:
            return None
        for factor, reduced in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                                (2, cv2.IMREAD_REDUCED_COLOR_2)):
            if longest // factor >= min_side:
                flag = reduced
                break
    bgr = cv2.imread(path, flag)
    return None if bgr is None else np.ascontiguousarray(bgr[..., ::-1])


# ------------------------------------------------------------------------------------------------ survey
def package_files(binary: str) -> list:
    try:
        out = subprocess.run(["dpkg-query", "-L", binary], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return [p for p in out.splitlines() if p.lower().endswith(IMAGE_EXT) and os.path.isfile(p)]


def _area(path: str) -> int:
    m = re.search(r"(\d+)x(\d+)", os.path.basename(path))
    if m:
        w, h = int(m.group(1)), int(m.group(2))
        return w * h if w >= h else 0  # portrait variants are the same picture cropped
    img = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    return 0 if img is None else int(img.shape[0] * img.shape[1])


def candidates(package: str) -> list:
    """(binary package, path, name) of every picture of a package: one per plasma wallpaper and variant (the
    largest landscape file), one per group of resolutions of the same picture, no screenshots."""
    groups = {}
    for binary in SHIPPING.get(package, (package,)):
        for path in package_files(binary):
            base = os.path.basename(path)
            if base.startswith("screenshot"):
                continue
            if package == "plasma-workspace-wallpapers":
                parts = path.split("/")
                wall = parts[parts.index("wallpapers") + 1]
                key = wall + ("-dark" if "images_dark" in parts else "")
            else:
                key = re.sub(r"_\d+x\d+$", "", os.path.splitext(base)[0])
            groups.setdefault(key, []).append((binary, path))
    out = []
    for key, files in sorted(groups.items()):
        binary, path = max(files, key=lambda f: (_area(f[1]), f[1]))
        out.append((binary, os.path.realpath(path), f"{PREFIX[package]}_{key}"))
    return out


def dep5_licence(binary: str, path: str) -> tuple:
    """(licence, copyright) of an installed file from its package's machine-readable copyright file."""
    try:
        text = open(f"/usr/share/doc/{binary}/copyright", encoding="utf-8", errors="replace").read()
    except OSError:
        return "", ""
    best = ("", "", 0)
    for stanza in re.split(r"\n\s*\n", text):
        m = re.search(r"^Files:(.*?)(?=^\S)", stanza + "\nX", re.S | re.M)
        lic = re.search(r"^License:\s*(\S+)", stanza, re.M)
        if not m or not lic:
            continue
        cr = re.search(r"^Copyright:(.*?)(?=^\S)", stanza + "\nX", re.S | re.M)
        holder = " ".join(cr.group(1).split()) if cr else ""
        for pattern in m.group(1).split():
            depth = pattern.count("/") + 1
            tail = "/".join(path.split("/")[-depth:])
            score = len(pattern) if fnmatch.fnmatch(tail, pattern) else 0  # the most specific stanza wins
            if not score and "/" in pattern and fnmatch.fnmatch(os.path.basename(path), pattern.split("/")[-1]):
                score = len(pattern.split("/")[-1])  # installed into another folder than the source tree's
            if score > best[2]:
                best = (lic.group(1), holder, score)
    return best[0], best[1]


def plasma_licence(path: str) -> tuple:
    parts = path.split("/")
    folder = "/".join(parts[: parts.index("contents")])
    meta = os.path.join(folder, "metadata.json")
    if os.path.isfile(meta):
        k = json.load(open(meta, encoding="utf-8")).get("KPlugin", {})
        authors = ", ".join(a.get("Name", "") for a in k.get("Authors", []))
        return k.get("License", ""), authors
    desktop = os.path.join(folder, "metadata.desktop")
    if os.path.isfile(desktop):
        kv = dict(line.split("=", 1) for line in open(desktop, encoding="utf-8").read().splitlines() if "=" in line)
        return kv.get("X-KDE-PluginInfo-License", ""), kv.get("X-KDE-PluginInfo-Author", "")
    return "", ""


def licence_of(package: str, binary: str, path: str) -> tuple:
    if package == "plasma-workspace-wallpapers":
        lic, holder = plasma_licence(path)
        if lic:
            return lic + " (metadata.json)", holder
    lic, holder = dep5_licence(binary, path)
    if lic:
        return lic, holder
    if package == "gnome-backgrounds":  # its copyright file predates the current pictures and names none of them
        return "GPL-2 / CC-BY-SA-3.0 (debian/copyright names no current file)", "GNOME design team"
    return "", ""


def survey(folder: str) -> int:
    os.makedirs(folder, exist_ok=True)
    rows, tiles = [], []
    for package in PACKAGES:
        found = candidates(package)
        if not found:
            print(f"warning: no pictures of {package}: install it (scripts/setup_photo_library.sh)", file=sys.stderr)
        for binary, path, name in found:
            lic, holder = licence_of(package, binary, path)
            digest = sha256(path)
            twin = next((r[0] for r in rows if r[3] == digest), None)
            rgb = read_rgb(path) if not path.endswith(".svg") and twin is None else None
            note = ("vector graphic" if path.endswith(".svg") else f"the same file as {twin}" if twin
                    else "unreadable" if rgb is None else "")
            size = f"{rgb.shape[1]}x{rgb.shape[0]}" if rgb is not None else ""
            rows.append([name, binary, path, digest, dhash(rgb) if rgb is not None else "0" * 16, lic, holder,
                         "exclude" if rgb is None else "?", note or size])
            if rgb is not None:
                tile = cv2.resize(rgb, (320, 200), interpolation=cv2.INTER_AREA)
                cv2.rectangle(tile, (0, 0), (320, 16), (0, 0, 0), -1)
                cv2.putText(tile, f"{len(tiles)}: {name}"[:44], (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                            (255, 255, 255), 1, cv2.LINE_AA)
                tiles.append(tile)
    for s in range(0, len(tiles), 12):
        page = tiles[s:s + 12] + [np.zeros_like(tiles[0])] * (-len(tiles[s:s + 12]) % 3)
        sheet = np.concatenate([np.concatenate(page[r:r + 3], 1) for r in range(0, len(page), 3)], 0)
        cv2.imwrite(os.path.join(folder, f"sheet_{s // 12:02d}.png"), sheet[..., ::-1])
    with open(os.path.join(folder, "draft.tsv"), "w", encoding="utf-8") as fh:
        fh.write("\t".join(COLUMNS) + "\n")
        for r in rows:
            fh.write("\t".join(r) + "\n")
    print(f"{len(rows)} pictures, {len(tiles)} readable: contact sheets and draft.tsv in {folder}")
    return 0


# ------------------------------------------------------------------------------------------------ build
def eval_hashes(folder: str) -> dict:
    out = {}
    if folder and os.path.isdir(folder):
        for f in sorted(os.listdir(folder)):
            rgb = read_rgb(os.path.join(folder, f))
            if rgb is not None:
                out[f] = dhash(rgb)
    return out


def build(out: str, index: str, max_side: int, eval_folder: str) -> int:
    entries = read_index(index)
    excluded = {e.sha256 for e in entries if not e.used}
    excluded_names = {e.source for e in entries if not e.used} | {e.name for e in entries if not e.used}
    evals = eval_hashes(eval_folder)
    if not evals:
        print(f"note: no evaluation photos found in '{eval_folder}'; relying on the index's exclusions",
              file=sys.stderr)
    os.makedirs(out, exist_ok=True)
    photos, skipped, missing = [], [], []
    t0 = time.perf_counter()
    for e in entries:
        if not e.used:
            continue
        if not os.path.isfile(e.source):
            missing.append(e)
            continue
        digest = sha256(e.source)
        if digest != e.sha256 or digest in excluded or e.source in excluded_names or e.name in excluded_names:
            skipped.append((e.name, "its file changed since curation (re-run --survey)" if digest != e.sha256
                            else "it is an excluded file"))
            continue
        rgb = read_rgb(e.source, min_side=max_side)
        if rgb is None:
            skipped.append((e.name, "unreadable"))
            continue
        same = [f for f, h in evals.items() if hamming(h, dhash(rgb)) <= SAME_PHOTO_BITS]
        if same:
            raise SystemExit(f"error: '{e.name}' ({e.source}) is the evaluation photo {same[0]}: mark it 'exclude' "
                             f"in {index}")
        scale = max_side / max(rgb.shape[:2])
        if scale < 1:
            rgb = cv2.resize(rgb, (round(rgb.shape[1] * scale), round(rgb.shape[0] * scale)),
                             interpolation=cv2.INTER_AREA)
        file = f"{e.name}.jpg"
        cv2.imwrite(os.path.join(out, file), rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
        photos.append({"name": e.name, "file": file, "width": int(rgb.shape[1]), "height": int(rgb.shape[0]),
                       **{k: getattr(e, k) for k in ("package", "source", "sha256", "licence", "copyright", "note")},
                       "roles": list(e.roles)})
    if missing:
        pkgs = sorted({e.package for e in missing})
        print(f"error: {len(missing)} curated photos are not installed (packages: {', '.join(pkgs)}); run "
              f"'bash scripts/setup_photo_library.sh {out}' as root", file=sys.stderr)
        return 2
    for name, why in skipped:
        print(f"warning: skipped {name}: {why}", file=sys.stderr)
    count = lambda key: {k: sum(1 for p in photos if k in (p[key] if key == "roles" else [p[key]]))  # noqa: E731
                         for k in sorted({x for p in photos for x in (p[key] if key == "roles" else [p[key]])})}
    index_json = {"format": FORMAT, "version": 1, "max_side": max_side, "created_utc": time.strftime(
        "%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "curated_index": os.path.basename(index),
        "excluded_evaluation_photos": sorted(evals), "counts": {"photos": len(photos), "roles": count("roles"),
                                                                "packages": count("package"),
                                                                "licences": count("licence")},
        "photos": photos}
    with atomic_path(os.path.join(out, "index.json")) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(index_json, fh, indent=1)
    print(f"wrote {len(photos)} photos to {out} in {time.perf_counter() - t0:.1f} s; roles "
          f"{json.dumps(index_json['counts']['roles'])}; {len(skipped)} skipped")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", help="library folder to write")
    ap.add_argument("--index", default=INDEX, help="curated index (default: backend/data/photo_library.tsv)")
    ap.add_argument("--max-side", type=int, default=640, help="longest side of the stored photos (default 640)")
    ap.add_argument("--eval-photos", default=EVAL_PHOTOS,
                    help="folder of evaluation photos that must not enter the library (default ../shared/data/photos)")
    ap.add_argument("--survey", metavar="DIR", help="write contact sheets and a draft index of the installed pictures")
    a = ap.parse_args(argv)
    if a.survey:
        return survey(a.survey)
    if not a.out:
        ap.error("give OUT_DIR (or --survey DIR)")
    if a.max_side < 64:
        ap.error("--max-side must be at least 64")
    return build(a.out, a.index, a.max_side, a.eval_photos)


if __name__ == "__main__":
    sys.exit(main())
