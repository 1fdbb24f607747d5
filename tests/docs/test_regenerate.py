#!/usr/bin/env python3
"""tools/docs/regenerate's own logic on inputs with known answers: the README check's tolerance, the ranges it
prints, the scenario descriptions, and the detector of fixed points and 2-cycles behind README's claim about
symmetric W. Run by ctest (regenerate_helpers); needs no gradflow run."""
import importlib.machinery
import importlib.util
import math
import pathlib
import random
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True
ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
_loader = importlib.machinery.SourceFileLoader("regenerate", str(ROOT / "tools" / "docs" / "regenerate"))
_spec = importlib.util.spec_from_loader("regenerate", _loader)
regenerate = importlib.util.module_from_spec(_spec)
_loader.exec_module(regenerate)


class MinimalRnnRows(unittest.TestCase):
    def test_rows_agree_until_the_theory_parts_from_the_measured_edge(self):
        measured = {-4: None, -3: 10.0, 0: 7.0, 2: 6.5, 3: 7.5, 4: 10.0, 5: None}
        theory = {-4: None, -3: 10.5, 0: 7.2, 2: 6.0, 3: 6.2, 4: 7.2, 5: 8.0}
        self.assertEqual(regenerate.agreeing_rows(measured, theory), ([-3, 0, 2], 3))   # 6.2 is 17 % below 7.5
        self.assertEqual(regenerate.agreeing_rows(measured, theory, within=0.5), ([-3, 0, 2, 3, 4], None))
        self.assertEqual(regenerate.agreeing_rows(measured, theory, within=0.01), ([], -3))


class Tolerance(unittest.TestCase):
    def test_numbers_agree_to_two_units_of_the_last_digit_or_one_percent(self):
        same = regenerate.same_to_printed_precision
        self.assertTrue(same("rate 1.08 per step", "rate 1.10 per step"))      # two units of 0.01
        self.assertFalse(same("rate 1.08 per step", "rate 1.11 per step"))     # three units, and > 1 %
        self.assertTrue(same("gain 1549.0", "gain 1560.0"))                    # within 1 %
        self.assertFalse(same("gain 1549.0", "gain 1570.0"))

    def test_words_must_match_and_wall_times_are_not_compared(self):
        same = regenerate.same_to_printed_precision
        self.assertTrue(same("405 cell runs in 22 s on 2 threads", "405 cell runs in 61 s on 2 threads"))
        self.assertFalse(same("405 cell runs in 22 s", "415 cell runs in 22 s"))
        self.assertFalse(same("it is 0.97 (vanishing)", "it is 0.97 (critical)"))
        self.assertTrue(same("within\n  1.08–1.10", "within 1.09–1.11"))   # line breaks are not words

    def test_ranges_print_both_ends_and_single_values_alone(self):
        self.assertEqual(regenerate.span([1.51, 1.49], ".2g"), "1.5–1.5")
        self.assertEqual(regenerate.span([2.87], ".2g"), "2.9")
        self.assertEqual(regenerate.span([0.9, 1.004, 0.95], ".3f"), "0.900–1.004")


class Wrap(unittest.TestCase):
    def test_no_line_starts_a_markdown_list(self):
        text = regenerate.para("x " * 52 + "where c + s ρ E|f'| = 1, a - b and a * b")
        self.assertIn("\n", text)
        for line in text.splitlines():
            self.assertNotRegex(line, r"^[-+*] ")
        self.assertEqual(" ".join(text.split()), " ".join(("x " * 52 + "where c + s ρ E|f'| = 1, a - b and a * b").split()))


class Describe(unittest.TestCase):
    def test_swept_axes_then_the_fixed_keys(self):
        resolved = {"network.cell": "vanilla", "network.activation": "tanh", "spectrum.kind": "ginibre",
                    "input.kind": "gaussian", "input.std": 0.5, "network.units": 64, "network.steps": 300,
                    "network.batch": 4}
        axes = [{"key": "spectrum.radius", "values": [0.5 + 0.25 * i for i in range(15)]},
                {"key": "network.cell", "values": ["vanilla", "gru"]}]
        run_json = {"scenario": {"resolved": resolved, "sweep": {"axes": axes, "replicates": 3}}}
        self.assertEqual(regenerate.describe(run_json),
                         "spectrum.radius at 15 values from 0.5 to 4 × network.cell = vanilla, gru; tanh, ginibre W, "
                         "input std 0.5, N = 64, T = 300, B = 4, 3 replicates")


class Settled(unittest.TestCase):
    """settled() classifies runs by the period of mean |f'(a_t)| over the last SETTLED steps."""

    def test_fixed_point_two_cycle_and_chaos(self):
        rng = random.Random(7)
        steps = 3 * regenerate.SETTLED
        runs = {
            "0": [0.5 + 0.3 * 0.5 ** t for t in range(1, steps + 1)],            # converges to a fixed point
            "1": [0.4 + (0.1 if t % 2 else -0.1) + 0.2 * 0.8 ** t for t in range(1, steps + 1)],   # a 2-cycle
            "2": [rng.uniform(0.2, 0.6) for _ in range(steps)],                    # no period
            "3": [0.5 + 0.1 * math.cos(2 * math.pi * t / 3) for t in range(1, steps + 1)],          # period 3
        }
        with tempfile.TemporaryDirectory() as tmp:
            out = pathlib.Path(tmp)
            with (out / "series.csv").open("w") as f:
                f.write("cell,replicate,t,mean_abs_dact_t\n")
                for cell, values in runs.items():
                    f.write(f"{cell},0,0,\n")
                    for t, v in reversed(list(enumerate(values, 1))):   # any row order
                        f.write(f"{cell},0,{t},{v!r}\n")
            rows = [{"cell": c, "replicate": "0"} for c in runs]
            self.assertEqual(regenerate.settled(out, rows), {1: 1, 2: 1, 0: 2})
            self.assertEqual(regenerate.settled(out, rows[:1]), {1: 1, 2: 0, 0: 0})


if __name__ == "__main__":
    unittest.main()
