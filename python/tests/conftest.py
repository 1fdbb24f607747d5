import os
import subprocess

import pytest

SOURCE_DIR = os.environ.get("GRADFLOW_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))
CLI = os.environ.get("GRADFLOW_CLI", os.path.join(SOURCE_DIR, "build", "gradflow"))

# Columns that hold wall times: the only ones that differ between two runs of the same scenario.
TIMING = {"seconds", "seconds_spectrum", "seconds_forward", "seconds_backward"}


def run_cli(*args, check=True):
    p = subprocess.run([CLI, *map(str, args)], capture_output=True, text=True)
    if check and p.returncode != 0:
        raise AssertionError(f"gradflow {' '.join(map(str, args))}: exit {p.returncode}\n{p.stderr}")
    return p


@pytest.fixture
def cli():
    return run_cli
