#!/usr/bin/env bash
# Rebuild everything motion model v2 trains and is evaluated on, on a fresh machine (resumable: rerun to go on).
#
#   bash scripts/build_v2_data.sh [OUT_DIR] [VIDEOS_DIR]      # defaults: /work/datasets ../shared/data/videos
#
# 1. the photo library: Debian's wallpaper packages (apt, as root), curated (backend/data/photo_library.tsv);
# 2. real windows of every clip: trust maps, the camera's motion removed; the clips named in HOLDOUT form split
#    "test", which no stage trains, validates or calibrates on (scripts/eval_motion.py scores them);
# 3. procedural scenes with real photographs (exact motion).
# Then train: the command printed at the end (docs/motion.md).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-/work/datasets}
VIDEOS=${2:-../shared/data/videos}
HOLDOUT=pine_canopy_blue_sky,mimosa_leaves_wind,candle_yellow_dark,palms_storm_wind,tall_grass_reeds_wind_portrait
PY=.venv/bin/python
mkdir -p "$OUT"
t0=$(date +%s)
bash scripts/setup_photo_library.sh "$OUT/photolib"
"$PY" scripts/build_dataset.py "$OUT/real_v2" --synthetic 0 --videos "$VIDEOS" --holdout "$HOLDOUT" \
    --val-fraction-real 0 --negatives 1 --workers 2 --no-plot
"$PY" scripts/build_dataset.py "$OUT/syn_v2" --synthetic 2000 --photos "$OUT/photolib" --negatives 0 --workers 2 \
    --no-plot
echo "build_v2_data: done in $(( $(date +%s) - t0 )) s. Train with:" >&2
echo "  $PY scripts/train_motion.py --stage v2 --data $OUT/syn_v2,$OUT/real_v2 --out runs/v2 --steps 5000 --batch 16 --val-every 250 --threads 1" >&2
