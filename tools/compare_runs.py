#!/usr/bin/env python3
"""Runs scenarios with two gradflow binaries and checks that their results are byte-identical.

    tools/compare_runs.py BASE_BIN NEW_BIN [--scenarios scenarios/*.toml] [--threads 2] [--workdir DIR]

For every scenario both binaries write OUTDIR; cells.csv, series.csv and every file under heatmaps/ are
compared line by line with the timing columns (seconds, seconds_*) blanked. Used by refactors that promise
"numbers unchanged" (docs/architecture.md). scenarios/sparse_100k.toml runs at 5,000 units (--set) so that the
comparison takes minutes, not an hour; the note says so. Exit 0 when every file matches, 1 otherwise.
"""
import argparse
import csv
import io
import pathlib
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Scenario-specific overrides that keep the comparison short (same code paths, smaller N).
SHRINK = {"sparse_100k": ["network.units=5000"]}


def normalised(path: pathlib.Path) -> list:
    """The rows of a CSV with timing columns blanked (they differ between any two runs)."""
    text = path.read_text()
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return rows
    timing = [i for i, name in enumerate(rows[0]) if name == "seconds" or name.startswith("seconds_")]
    for row in rows[1:]:
        for i in timing:
            if i < len(row):
                row[i] = ""
    return rows


def run(binary: str, scenario: pathlib.Path, out: pathlib.Path, threads: int) -> None:
    cmd = [binary, "run", str(scenario), "-o", str(out), "--force", "--quiet", "--threads", str(threads)]
    for s in SHRINK.get(scenario.stem, []):
        cmd += ["--set", s]
    subprocess.run(cmd, check=True)


def compare(base: pathlib.Path, new: pathlib.Path, notes: list) -> list:
    problems = []
    names = [n for n in ("cells.csv", "series.csv") if (base / n).exists()]
    names += sorted(str(p.relative_to(base)) for p in (base / "heatmaps").glob("*") if p.is_file())
    for name in names:
        a, b = base / name, new / name
        if not b.exists():
            problems.append(f"{name}: missing in the new run")
            continue
        if name.endswith(".csv"):
            ra, rb = normalised(a), normalised(b)
            if name in ("cells.csv", "series.csv") and ra and rb and ra[0] != rb[0]:
                # Columns are only ever added (DESIGN.md): compare the base's columns by name, list the new ones.
                added = [c for c in rb[0] if c not in ra[0]]
                missing = [c for c in ra[0] if c not in rb[0]]
                if missing:
                    problems.append(f"{name}: columns missing in the new run: {', '.join(missing)}")
                    continue
                idx = [rb[0].index(c) for c in ra[0]]
                rb = [[r[i] if i < len(r) else "" for i in idx] for r in rb]
                notes.append(f"{name}: added columns {', '.join(added)} (the base's columns compared)")
            if ra != rb:
                diff = next((i for i, (x, y) in enumerate(zip(ra, rb)) if x != y), min(len(ra), len(rb)))
                problems.append(f"{name}: differs from row {diff} ({len(ra)} vs {len(rb)} rows)")
        elif a.read_bytes() != b.read_bytes():
            problems.append(f"{name}: differs")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("base")
    ap.add_argument("new")
    ap.add_argument("--scenarios", nargs="*", default=sorted(str(p) for p in (ROOT / "scenarios").glob("*.toml")))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workdir", default=None)
    args = ap.parse_args()
    work = pathlib.Path(args.workdir or tempfile.mkdtemp(prefix="compare_runs."))
    failed = skipped = 0
    for s in map(pathlib.Path, args.scenarios):
        base_out, new_out = work / s.stem / "base", work / s.stem / "new"
        try:
            run(args.base, s, base_out, args.threads)
        except subprocess.CalledProcessError as e:
            if e.returncode != 2:
                raise
            # A scenario the base binary refuses as bad input uses something newer (a key, a cell kind).
            print(f"{s.stem:28s} skipped (the base binary refuses it: a newer scenario)", flush=True)
            skipped += 1
            continue
        run(args.new, s, new_out, args.threads)
        notes = []
        problems = compare(base_out, new_out, notes)
        files = 2 + len(list((base_out / "heatmaps").glob("*")))
        new_files = sorted(str(p.relative_to(new_out)) for p in new_out.rglob("*")
                           if p.is_file() and not (base_out / p.relative_to(new_out)).exists())
        if new_files:
            notes.append("new files: " + ", ".join(new_files))
        print(f"{s.stem:28s} {'identical' if not problems else 'DIFFERS'} ({files} files)"
              + "".join(f"\n    {p}" for p in problems) + "".join(f"\n    note: {n}" for n in notes), flush=True)
        failed += bool(problems)
    compared = len(args.scenarios) - skipped
    print(f"{compared - failed} of {compared} scenarios identical"
          + (f", {skipped} skipped" if skipped else "") + f" (outputs in {work})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
