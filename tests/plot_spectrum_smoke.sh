#!/usr/bin/env bash
# Smoke test of tools/plot_spectrum.py on eigenvalues written by `gradflow spectrum -o`.
#
#   tests/plot_spectrum_smoke.sh GRADFLOW
#
# Writes the eigenvalues of a small dale and a small nonnormal matrix into a temporary directory, draws them,
# and checks that the PNGs are non-empty, that a CSV without its JSON summary still plots, and that a missing
# or malformed CSV exits with code 2 and a message. Python: $PYTHON if set, else the first of python3,
# /usr/bin/python3 that has numpy and matplotlib. Exit: 0 all checks passed, 1 some failed, 2 usage error.
set -u
[ $# -eq 1 ] || { echo "usage: $0 GRADFLOW" >&2; exit 2; }
gradflow=$1
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
plot=$root/tools/plot_spectrum.py
python=""
for py in ${PYTHON:-} python3 /usr/bin/python3; do
  command -v "$py" >/dev/null 2>&1 || continue
  if "$py" -c 'import numpy, matplotlib' >/dev/null 2>&1; then python=$py; break; fi
done
[ -n "$python" ] || { echo "plot_spectrum_smoke: no python3 with numpy and matplotlib" >&2; exit 1; }
tmp=$(mktemp -d "${TMPDIR:-/tmp}/plot_spectrum_smoke.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
failed=0
check() { if "$@"; then echo "ok: ${*: -1}"; else echo "FAILED: $*" >&2; failed=1; fi; }

printf '[network]\nunits = 150\n[spectrum]\nkind = "dale"\nmean_i = -1.0\n' > "$tmp/dale.toml"
printf '[network]\nunits = 150\n[spectrum]\nkind = "nonnormal"\nradius = 0.9\nnonnormality = 2.0\n' > "$tmp/nn.toml"
"$gradflow" spectrum "$tmp/dale.toml" -o "$tmp/dale.csv" >/dev/null || { echo "gradflow spectrum failed" >&2; exit 1; }
"$gradflow" spectrum "$tmp/nn.toml" -o "$tmp/nn.csv" >/dev/null || { echo "gradflow spectrum failed" >&2; exit 1; }
check test -s "$tmp/dale.csv.json"
"$python" "$plot" "$tmp/dale.csv" >/dev/null; check test -s "$tmp/dale.png"
"$python" "$plot" "$tmp/nn.csv" -o "$tmp/custom.png" --title "custom" >/dev/null; check test -s "$tmp/custom.png"
rm "$tmp/nn.csv.json"
"$python" "$plot" "$tmp/nn.csv" -o "$tmp/bare.png" >/dev/null; check test -s "$tmp/bare.png"

"$python" "$plot" "$tmp/missing.csv" 2>"$tmp/err"; code=$?
check test "$code" -eq 2
check grep -q "missing.csv: no such file" "$tmp/err"
printf 'x,y\n1,2\n' > "$tmp/bad.csv"
"$python" "$plot" "$tmp/bad.csv" 2>"$tmp/err"; code=$?
check test "$code" -eq 2
check grep -q "expected the header 're,im'" "$tmp/err"
"$python" "$plot" --help >/dev/null; check test $? -eq 0
exit $failed
