"""Shared fixtures: every test gets a private queue directory and a unique name."""

import os
import shutil
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def qdir(tmp_path, monkeypatch):
    """A private directory for queue files, also exported as SHMQ_DIR."""
    d = tmp_path / "queues"
    d.mkdir()
    monkeypatch.setenv("SHMQ_DIR", str(d))
    return d


@pytest.fixture
def name():
    """A queue name no other test uses."""
    return "t-" + uuid.uuid4().hex[:12]


@pytest.fixture
def cli():
    """Path of the `shmq` CLI (cargo build --release -p shmq-cli).

    Set SHMQ_CLI to point elsewhere; with SHMQ_REQUIRE_CLI=1 (CI) a missing
    binary fails the test instead of skipping it.
    """
    path = os.environ.get("SHMQ_CLI") or str(ROOT / "target" / "release" / "shmq")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        path = shutil.which("shmq") or ""
    if not path:
        if os.environ.get("SHMQ_REQUIRE_CLI") == "1":
            pytest.fail("the shmq CLI is missing: cargo build --release -p shmq-cli")
        pytest.skip("the shmq CLI is not built (cargo build --release -p shmq-cli)")
    return path
