"""Shared fixtures: the repository catalog and a CLI runner that goes through planner.cli.main like a user."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from planner.catalog import load_catalog
from planner.cli import main

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


@pytest.fixture(autouse=True)
def _repo_catalog(monkeypatch):
    monkeypatch.delenv("PLANNER_CATALOG", raising=False)
    monkeypatch.setenv("COLUMNS", "200")


@pytest.fixture(scope="session")
def catalog():
    return load_catalog(str(ROOT / "catalogs"))


@pytest.fixture
def run(capsys):
    """run('estimate', 'llama-2-13b', ...) -> CliResult(exit code, stdout, stderr)."""

    def _run(*args: str) -> CliResult:
        code = 0
        try:
            main([str(a) for a in args])
        except SystemExit as exc:  # main exits non-zero on errors
            code = exc.code if isinstance(exc.code, int) else 1
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return _run


@pytest.fixture(scope="session")
def fleet(tmp_path_factory):
    """The benchmark's 20-deployment fleet over the whole catalog (20 GPU types)."""
    from bench.fleet import prepared, synthetic_scenario

    return prepared(synthetic_scenario(20), tmp_path_factory.mktemp("fleet"))[0]
