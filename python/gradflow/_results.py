"""Results as numpy arrays: cells.csv / series.csv text parsed column by column (gradflow writes numbers in
shortest round-trip form and Python's float() rounds correctly, so every value is the CLI's double bit for
bit)."""
import csv
import io
import json
import os

import numpy as np


def _column(values):
    """int64 when every field is an integer, float64 (empty -> nan) when every field is a number, else str."""
    if values and all(v.lstrip("-").isdigit() for v in values):
        return np.array([int(v) for v in values], dtype=np.int64)
    try:
        return np.array([float(v) if v != "" else np.nan for v in values], dtype=np.float64)
    except ValueError:
        return np.array(values, dtype=str)


def parse_csv(text):
    """{column: numpy array} of CSV text with a header (an empty dict for empty text)."""
    if not text:
        return {}
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        return {}
    header, body = rows[0], rows[1:]
    return {name: _column([r[i] for r in body]) for i, name in enumerate(header)}


def read_csv(path):
    with open(path, newline="") as f:
        return parse_csv(f.read())


class Result:
    """A run: .cells and .series ({column: numpy array}, as cells.csv and series.csv), .run (run.json as a
    dict), .summary ({column: array} of summary.csv when the run wrote one, else None) and .out (the output
    directory, None for a run held in memory)."""

    def __init__(self, cells, series, run, summary=None, out=None):
        self.cells = cells
        self.series = series
        self.run = run
        self.summary = summary
        self.out = out

    @classmethod
    def from_memory(cls, raw):
        summary = parse_csv(raw["summary_csv"]) if "summary_csv" in raw else None
        return cls(parse_csv(raw["cells_csv"]), parse_csv(raw["series_csv"]), json.loads(raw["run_json"]), summary)

    @classmethod
    def from_dir(cls, out):
        def maybe(name):
            p = os.path.join(out, name)
            return read_csv(p) if os.path.exists(p) else None
        with open(os.path.join(out, "run.json")) as f:
            run = json.load(f)
        return cls(maybe("cells.csv"), maybe("series.csv") or {}, run, maybe("summary.csv"), out)

    @staticmethod
    def _frame(columns):
        try:
            import pandas
        except ImportError as e:
            raise ImportError("cells_frame() needs pandas (Debian: python3-pandas); .cells is a dict of numpy "
                              "arrays without it") from e
        return pandas.DataFrame(columns)

    def cells_frame(self):
        """cells.csv as a pandas DataFrame (needs pandas)."""
        return self._frame(self.cells)

    def series_frame(self):
        """series.csv as a pandas DataFrame (needs pandas)."""
        return self._frame(self.series)

    def cell_series(self, cell, replicate=0):
        """{column: array} of series.csv rows of one cell x replicate (t = 0..T)."""
        keep = (self.series["cell"] == cell) & (self.series["replicate"] == replicate)
        return {k: v[keep] for k, v in self.series.items()}

    def __repr__(self):
        n = len(next(iter(self.cells.values()))) if self.cells else 0
        return (f"<gradflow.Result {self.run.get('scenario_name', '')!r}: {n} rows, status "
                f"{self.run.get('status')!r}{', out=' + repr(self.out) if self.out else ''}>")
