#!/usr/bin/env bash
# One command from a fresh clone: dependencies, release build, the default scenario and its heatmap.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DGRADFLOW_BUILD_TESTS=OFF
cmake --build build -j2 --target gradflow_cli
out=out/default
build/gradflow run scenarios/default.toml -o "$out" --force
py=/usr/bin/python3; [ -x "$py" ] || py=python3   # Debian's python has Debian's matplotlib
"$py" tools/plot_heatmap.py "$out"
echo "quickstart: results in $out (cells.csv, series.csv, run.json, report.html, heatmap.png)"
