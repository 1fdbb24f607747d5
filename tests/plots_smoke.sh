#!/usr/bin/env bash
# Smoke test of the plot tools (tools/plot_heatmap.py, tools/plot_series.py, tools/plot_verdicts.py).
#
#   tests/plots_smoke.sh OUTDIR
#
# OUTDIR is a directory written by `gradflow run` with at least one sweep axis. Nothing is built and
# nothing is written into OUTDIR: the figures go to a temporary directory that is removed at the end.
# Checks that both scripts draw non-empty PNGs (and an SVG with --svg), that they exit with code 2 and a
# clear message on a missing or wrong directory, an unknown column or an unknown cell, and that --help works.
# A copy of OUTDIR's files in the temporary directory, turned into a run with a leaky cell, checks the cells'
# own predictor columns (predictor_cell, predictor_rms_cell, bound_cell).
# Python: $PYTHON if set, else the first of python3, /usr/bin/python3 that has numpy and matplotlib
# (Debian: python3-numpy, python3-matplotlib).
# Exit: 0 all checks passed, 1 some failed, 2 usage error.

set -u

usage() { echo "usage: $0 OUTDIR   (a directory written by 'gradflow run')" >&2; exit 2; }
[ $# -eq 1 ] || usage
outdir=$1
[ -d "$outdir" ] || { echo "plots_smoke: OUTDIR '$outdir' does not exist or is not a directory" >&2; exit 2; }

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
heatmap=$root/tools/plot_heatmap.py
series=$root/tools/plot_series.py
verdicts=$root/tools/plot_verdicts.py

python=""
for py in ${PYTHON:-} python3 /usr/bin/python3; do
  command -v "$py" >/dev/null 2>&1 || continue
  if "$py" -c 'import numpy, matplotlib' >/dev/null 2>&1; then python=$py; break; fi
done
if [ -z "$python" ]; then
  echo "plots_smoke: no python3 with numpy and matplotlib found" \
       "(apt-get install python3-numpy python3-matplotlib, or set PYTHON)" >&2
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/plots_smoke.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# Every file below OUTDIR with size and mtime (not `ls -la`: its ".." line changes whenever a neighbouring
# test writes next to OUTDIR).
listing() { (cd "$1" && find . -printf '%p %s %T@\n' | sort); }
before=$(listing "$outdir")

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "ok    $1"; }
fail() { failed=$((failed + 1)); echo "FAIL  $1"; [ -n "${2:-}" ] && sed 's/^/      /' "$2"; }

# run NAME EXPECTED_RC [grep pattern for stderr] -- command...
run() {
  local name=$1 want=$2 pattern=$3
  shift 4
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  if [ "$rc" -ne "$want" ]; then
    fail "$name (exit $rc, expected $want)" "$tmp/err"
    return 1
  fi
  if [ -n "$pattern" ] && ! grep -qiE "$pattern" "$tmp/err"; then
    fail "$name (stderr lacks /$pattern/)" "$tmp/err"
    return 1
  fi
  pass "$name"
  return 0
}

nonempty() {  # nonempty NAME FILE
  if [ -s "$2" ]; then pass "$1"; else fail "$1: $2 missing or empty"; fi
}

# --- figures from the real OUTDIR ------------------------------------------------------------------
has_axes() {
  "$python" -c 'import json, sys
sys.exit(0 if ((json.load(open(sys.argv[1])).get("scenario") or {}).get("sweep") or {}).get("axes") else 1)' \
    "$outdir/run.json" 2>/dev/null
}
if has_axes; then
  if run "plot_heatmap draws $outdir" 0 "" -- "$python" "$heatmap" "$outdir" -o "$tmp/heatmap.png" --svg; then
    nonempty "heatmap.png is written" "$tmp/heatmap.png"
    nonempty "heatmap.svg is written (--svg)" "$tmp/heatmap.svg"
    if grep -qF "$tmp/heatmap.png" "$tmp/out"; then pass "plot_heatmap prints the path written"
    else fail "plot_heatmap prints the path written" "$tmp/out"; fi
  fi
  run "plot_heatmap --metric predictor" 0 "" -- "$python" "$heatmap" "$outdir" --metric predictor \
      -o "$tmp/heatmap_predictor.png" && nonempty "heatmap_predictor.png is written" "$tmp/heatmap_predictor.png"
else
  run "plot_heatmap refuses a run without sweep axes" 2 "no sweep axis" -- "$python" "$heatmap" "$outdir" \
      -o "$tmp/heatmap.png"
fi

if [ -f "$outdir/series.csv" ]; then
  run "plot_series draws $outdir" 0 "" -- "$python" "$series" "$outdir" -o "$tmp/series.png" --svg &&
    nonempty "series.png is written" "$tmp/series.png" && nonempty "series.svg is written (--svg)" "$tmp/series.svg"
  run "plot_series --cells 0 --replicate 0" 0 "" -- "$python" "$series" "$outdir" --cells 0 --replicate 0 \
      -o "$tmp/series_0.png" && nonempty "series_0.png is written" "$tmp/series_0.png"
  run "plot_series rejects an unknown cell" 2 "cell 99999" -- "$python" "$series" "$outdir" --cells 99999 \
      -o "$tmp/bad.png"
else
  run "plot_series explains a missing series.csv" 2 "series\.csv.*analysis\.series" -- "$python" "$series" \
      "$outdir" -o "$tmp/series.png"
fi

if "$python" -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1])).get("verdicts") else 1)' \
    "$outdir/run.json" 2>/dev/null; then
  run "plot_verdicts draws $outdir" 0 "" -- "$python" "$verdicts" "$outdir" -o "$tmp/verdicts.png" --svg &&
    nonempty "verdicts.png is written" "$tmp/verdicts.png" && nonempty "verdicts.svg is written (--svg)" "$tmp/verdicts.svg"
  run "plot_verdicts --by none" 0 "" -- "$python" "$verdicts" "$outdir" --by none -o "$tmp/verdicts_flat.png" &&
    nonempty "verdicts_flat.png is written" "$tmp/verdicts_flat.png"
  run "plot_verdicts: unknown --by axis" 2 "not a sweep axis" -- "$python" "$verdicts" "$outdir" --by no.such.key \
      -o "$tmp/bad.png"
else
  run "plot_verdicts explains a run without verdicts" 2 "no verdicts" -- "$python" "$verdicts" "$outdir" \
      -o "$tmp/bad.png"
fi

# --- the cells' own predictors (predictor_cell, predictor_rms_cell, bound_cell) -------------------------
# gradflow writes them only when the scenario has a residual, leaky or gated cell; then predictor,
# predictor_rms and bound stay the textbook formulas. Without running gradflow, a copy of OUTDIR's files in
# $tmp becomes such a run: a network.cell axis with every cell once as vanilla (*_cell = the textbook
# columns, as gradflow writes them) and once as leaky with leak 0.5 (*_cell = 0.5 + 0.5 x, ...), with the
# matching verdicts and series. An OUTDIR that already has the columns is drawn as it is.
if has_axes; then
  cellrun=$tmp/cellrun
  if head -n 1 "$outdir/cells.csv" | tr ',' '\n' | grep -qx predictor_cell; then
    cellrun=$outdir
    pass "OUTDIR has the *_cell columns itself"
  elif mkdir "$cellrun" && "$python" - "$outdir" "$cellrun" >"$tmp/err" 2>&1 <<'EOF'
import csv, json, math, os, sys
src, dst = sys.argv[1:3]
meta = json.load(open(os.path.join(src, "run.json")))
sc = meta["scenario"]
sc["sweep"]["axes"].append({"key": "network.cell", "values": ["vanilla", "leaky"]})
sc.setdefault("resolved", {})["network.leak"] = 0.5
def num(s):
    return float(s) if s not in ("", None) else None
def cell_values(r, kind):
    out = {}
    for col, f in (("predictor", lambda v: 0.5 + 0.5 * v),
                   ("predictor_rms", lambda v: math.sqrt(0.25 + 0.25 * v * v)),
                   ("bound", lambda v: 0.5 + 0.5 * v)):
        v = num(r.get(col))
        out[col + "_cell"] = "" if v is None else repr(v if kind == "vanilla" else f(v))
    return out
with open(os.path.join(src, "cells.csv"), newline="") as f:
    reader = csv.DictReader(f)
    header = reader.fieldnames + ["network.cell", "predictor_cell", "predictor_rms_cell", "bound_cell"]
    rows = []
    for r in reader:
        for k, kind in enumerate(("vanilla", "leaky")):
            rows.append(dict(r, cell=str(2 * int(r["cell"]) + k), **{"network.cell": kind},
                             **cell_values(r, kind)))
with open(os.path.join(dst, "cells.csv"), "w", newline="") as f:
    w = csv.DictWriter(f, header)
    w.writeheader()
    w.writerows(rows)
if os.path.isfile(os.path.join(src, "series.csv")):
    with open(os.path.join(src, "series.csv"), newline="") as f, \
         open(os.path.join(dst, "series.csv"), "w", newline="") as g:
        reader, w = csv.reader(f), csv.writer(g)
        header = next(reader)
        w.writerow(header)
        pos = header.index("cell")
        for rec in reader:
            for k in (0, 1):
                w.writerow(rec[:pos] + [str(2 * int(rec[pos]) + k)] + rec[pos + 1:])
preds = (meta.get("verdicts") or {}).get("predictors")
if preds:
    by_name = {p["name"]: p for p in preds}
    extra = [dict(by_name[c], name=c + "_cell", column=c + "_cell")
             for c in ("predictor", "predictor_rms", "bound") if c in by_name]
    meta["verdicts"]["predictors"] = preds + extra
json.dump(meta, open(os.path.join(dst, "run.json"), "w"), indent=1)
EOF
  then
    pass "a run with the *_cell columns is made from OUTDIR"
  else
    fail "a run with the *_cell columns is made from OUTDIR" "$tmp/err"
    cellrun=""
  fi
  if [ -n "$cellrun" ]; then
    # textbook legends on the textbook columns, the cells' formulas on the *_cell columns; an old run (no
    # *_cell columns) keeps the cells' formulas on predictor, predictor_rms and bound
    if "$python" -B - "$root/tools" "$cellrun" >"$tmp/err" 2>&1 <<'EOF'
import sys
sys.path.insert(0, sys.argv[1])
from plot_heatmap import Run, predictor_labels
run = Run(sys.argv[2])
new = predictor_labels(run.meta, run.columns)
old = predictor_labels(run.meta, [c for c in run.columns if not c.endswith("_cell")])
assert sorted(new) == ["bound_cell", "predictor_cell", "predictor_rms_cell"], new
assert sorted(old) == ["bound", "predictor", "predictor_rms"], old
EOF
    then pass "legends: textbook on predictor/predictor_rms/bound, cell formulas on *_cell"
    else fail "legends: textbook on predictor/predictor_rms/bound, cell formulas on *_cell" "$tmp/err"; fi
    run "plot_heatmap draws a run with *_cell columns" 0 "" -- "$python" "$heatmap" "$cellrun" \
        -o "$tmp/heatmap_cell.png" && nonempty "heatmap_cell.png is written" "$tmp/heatmap_cell.png"
    run "plot_heatmap --metric predictor_cell" 0 "" -- "$python" "$heatmap" "$cellrun" \
        --metric predictor_cell -o "$tmp/heatmap_predictor_cell.png" &&
      nonempty "heatmap_predictor_cell.png is written" "$tmp/heatmap_predictor_cell.png"
    run "plot_heatmap --select network.cell=vanilla (no *_cell lines)" 0 "" -- \
        "$python" "$heatmap" "$cellrun" --select network.cell=vanilla -o "$tmp/heatmap_vanilla.png" &&
      nonempty "heatmap_vanilla.png is written" "$tmp/heatmap_vanilla.png"
    if [ -f "$cellrun/series.csv" ]; then
      run "plot_series draws *_cell slopes" 0 "" -- "$python" "$series" "$cellrun" --cells 0,1 \
          -o "$tmp/series_cell.png" && nonempty "series_cell.png is written" "$tmp/series_cell.png"
    fi
    if "$python" -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1])).get("verdicts") else 1)' \
        "$cellrun/run.json" 2>/dev/null; then
      run "plot_verdicts draws the *_cell predictors" 0 "" -- "$python" "$verdicts" "$cellrun" \
          -o "$tmp/verdicts_cell.png" && nonempty "verdicts_cell.png is written" "$tmp/verdicts_cell.png"
    fi
  fi
fi

if [ "$(listing "$outdir")" = "$before" ]; then pass "nothing was written into OUTDIR"
else fail "nothing was written into OUTDIR"; fi

# --- bad input: exit 2 with a clear message ------------------------------------------------------------
mkdir "$tmp/empty"
for tool in "$heatmap" "$series" "$verdicts"; do
  name=$(basename "$tool")
  run "$name: missing OUTDIR" 2 "does not exist" -- "$python" "$tool" "$tmp/no-such-dir"
  run "$name: directory without run.json/cells.csv" 2 "run\.json" -- "$python" "$tool" "$tmp/empty"
  run "$name: a file instead of a directory" 2 "not a directory" -- "$python" "$tool" "$heatmap"
  run "$name --help" 0 "" -- "$python" "$tool" --help
done
if has_axes; then
  run "plot_heatmap: unknown --metric column" 2 "no column 'no_such_column'" -- \
      "$python" "$heatmap" "$outdir" --metric no_such_column -o "$tmp/bad.png"
  run "plot_heatmap: unknown --x axis" 2 "not a sweep axis" -- \
      "$python" "$heatmap" "$outdir" --x no.such.key -o "$tmp/bad.png"
fi
if [ -e "$tmp/bad.png" ]; then fail "no figure is written on bad input"
else pass "no figure is written on bad input"; fi

echo "plots_smoke: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
