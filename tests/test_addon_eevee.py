"""Eevee renders the baked plane too. Eevee needs OpenGL (Mesa's software GL here) and a failed GL start aborts the
whole process, so the render runs in a child Python; ≈ 30-70 s on 2 cores, most of it Eevee's shader compilation."""
import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

from bpy_helpers import ROOT

pytestmark = pytest.mark.bpy

CHILD = textwrap.dedent("""
    import json, sys
    sys.path[:0] = [{root!r}, {scripts!r}]
    import blender_scene as bs
    import bpy
    from addon import compat
    scene = bs.start_blender(fps=30)
    obj, height = bs.photo_plane({photo!r}, 64, columns=32)
    bs.load_sway_volume({folder!r})
    bpy.ops.imagedyn.add_anchor()
    group = obj.vertex_groups["IDyn_anchor"]
    uv = [v.co.y for v in obj.data.vertices]
    low = min(uv)
    group.add([v.index for v in obj.data.vertices if v.co.y < low + 0.3], 0.0, "REPLACE")
    bs.setup_cycles(scene, 64, height, 4, obj.dimensions.x)
    scene.render.engine = compat.eevee_engine_id()
    first = scene.frame_start
    bs.render_frames(scene, [first, first + 20, first + 150], {folder!r})
    print(json.dumps({{"engine": scene.render.engine, "frames": [first, first + 20, first + 150]}}), flush=True)
    import os
    os._exit(0)  # Blender 4.2 as a module crashes while shutting down after add-on registration (see conftest.py)
""")


def test_eevee_renders_the_loop(tmp_path):
    rng = np.random.default_rng(0)
    photo = tmp_path / "photo.png"
    texture = (rng.random((10, 16, 3)) * 255).astype(np.uint8)
    Image.fromarray(texture).resize((160, 100), Image.NEAREST).save(photo)
    script = CHILD.format(root=str(ROOT), scripts=str(ROOT / "scripts"), photo=str(photo), folder=str(tmp_path))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    info = json.loads(run.stdout.strip().splitlines()[-1])
    assert info["engine"].startswith("BLENDER_EEVEE")
    shots = [np.asarray(Image.open(tmp_path / f"f{f:04d}.png").convert("RGB"), np.float32) for f in info["frames"]]
    height = shots[0].shape[0]
    assert shots[0].mean() > 20  # the photo is visible (not a black frame)
    moving = np.abs(shots[1] - shots[0])[: int(height * 0.6)].mean()
    anchored = np.abs(shots[1] - shots[0])[int(height * 0.8):].mean()
    assert moving > 2.0 and anchored < 0.25 * moving  # motion where free, (almost) none where anchored
    assert np.abs(shots[2] - shots[0]).max() <= 2.0  # one loop later: the same frame
