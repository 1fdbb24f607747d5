#!/usr/bin/env bash
# gradflow report (issue 17): a run writes OUTDIR/report.html by default; gradflow report rewrites it with a
# summary.csv present (columns read by name, in any order); the page is self-contained (no network
# reference, no script); headless Chromium renders it to a non-trivial screenshot and its DOM holds every
# section. Exit 77 (skipped) when chromium is not installed. Usage: report_chromium.sh GRADFLOW SCENARIO WORK
set -euo pipefail
cli=$1 scenario=$2 work=$3
rm -rf "$work" && mkdir -p "$work"
out=$work/run
"$cli" run "$scenario" -o "$out" --quiet
test -s "$out/report.html" || { echo "run did not write report.html" >&2; exit 1; }

# A summary as `gradflow summary` writes it (columns by name; order and extra columns must not matter).
cat > "$out/summary.csv" <<'CSV'
critical_hi,quantity,network.activation,critical,critical_lo,input.std,reason
1.2375,growth_rate,tanh,1.125,1.0125,0,
,predictor,relu,,,0,"no crossing, every cell vanishing"
CSV
"$cli" report "$out" > /dev/null
page=$out/report.html
if grep -qiE 'https?:|<script|<link|src=|url\(' "$page"; then
  echo "report.html refers to something outside itself:" >&2
  grep -oiE '.{0,40}(https?:|<script|<link|src=|url\().{0,40}' "$page" >&2
  exit 1
fi

chromium=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chromium" ]; then
  echo "SKIP: chromium not installed (Debian: apt-get install chromium; tools/setup.sh installs it)"
  exit 77
fi
flags=(--headless --no-sandbox --disable-gpu --disable-background-networking --disable-component-update
       --disable-sync --no-first-run)
timeout 120 "$chromium" "${flags[@]}" --user-data-dir="$(mktemp -d -p "$work")" --screenshot="$work/report.png" \
  --window-size=1200,2400 "file://$page" 2> "$work/chromium.log"
timeout 120 "$chromium" "${flags[@]}" --user-data-dir="$(mktemp -d -p "$work")" --dump-dom "file://$page" \
  > "$work/dom.html" 2>> "$work/chromium.log"

py=/usr/bin/python3; [ -x "$py" ] || py=python3
"$py" - "$work/report.png" "$work/dom.html" <<'PY'
import re, sys
import matplotlib.image as mpimg
import numpy as np
png, dom = sys.argv[1], open(sys.argv[2]).read()
img = mpimg.imread(png)[..., :3]
assert img.shape[0] >= 2000 and img.shape[1] >= 1000, img.shape
ink = np.mean(np.any(img < 0.9, axis=2))            # fraction of pixels that are not white
colours = len(np.unique((img * 255).astype(np.uint8).reshape(-1, 3), axis=0))
reds = np.mean((img[..., 0] > 0.8) & (img[..., 2] < 0.5))   # exploding cells of the heatmaps
blues = np.mean((img[..., 2] > 0.8) & (img[..., 0] < 0.5))  # vanishing cells
print(f"screenshot {img.shape[1]}x{img.shape[0]}: {ink:.1%} ink, {colours} colours, {reds:.2%} red, {blues:.2%} blue")
assert ink > 0.05 and colours > 50 and reds > 0.002 and blues > 0.002
text = re.sub(r"<[^>]+>", " ", dom)
for heading in ["Scenario", "Heatmaps", "Gradient norms", "Spectrum", "Verdicts", "Summary", "Run"]:
    assert re.search(r"<h2>\s*" + heading + r"\s*</h2>", dom), heading
for fragment in ["spectrum.radius", "measured growth rate", "eigenvalues of W", "predictor_rms",
                 "[1.0125, 1.2375]", "no crossing, every cell vanishing", "gradflow_commit"]:
    assert fragment in text, fragment
assert dom.count("<svg") >= 5, dom.count("<svg")
print("report: every section rendered")
PY
