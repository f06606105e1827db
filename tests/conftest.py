"""pytest configuration for the jpegai_fast suite (see docs/testing.md).

* ``slow`` tests (long fuzz campaigns) are skipped unless ``--run-slow`` is given or ``-m slow`` selects them;
  each has a fast counterpart that always runs.
* ``known_bug`` marks tests that reproduce a reported, not yet fixed bug in csrc/ or src/: they FAIL
  until the bug is fixed.  Deselect them with ``-m "not known_bug"``.
"""
from __future__ import annotations

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", default=False, help="run tests marked slow")


def pytest_configure(config):
    config.addinivalue_line("markers", "known_bug(issue): reproduces an open bug; fails until it is fixed")
    config.addinivalue_line("markers", "slow: longer property/fuzz runs (opt in with --run-slow or -m slow)")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--run-slow") or "slow" in (config.getoption("-m") or ""):
        return
    skip = pytest.mark.skip(reason="slow: opt in with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
