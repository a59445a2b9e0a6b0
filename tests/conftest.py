"""Shared fixtures: the shipped catalog, its reference text, a fresh pipeline, and the
command run as a child process."""

from __future__ import annotations

import functools
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import ikefilter
from ikefilter import catalog
from ikefilter.pipeline import Pipeline

DATA = Path(__file__).parent / "data"

# Property tests draw a fifth of their examples by default, and the corpora of the counting
# tests are a fifth of their size (quick to run while editing); all of them with
# IKEFILTER_THOROUGH=1 (`tox -e thorough`, which CI runs).
THOROUGH = os.environ.get("IKEFILTER_THOROUGH") == "1"


def examples(n: int) -> int:
    """How many examples (property draws, corpus lines) a test that wants ``n`` takes in
    this run."""
    return n if THOROUGH else max(20, n // 5)
REFERENCE = catalog.data_dir() / "cos-stream-log-reference-ike.txt"
CURATED = catalog.data_dir() / "ike-ecs.toml"


@functools.lru_cache(maxsize=1)
def reference_entries() -> dict[int, dict[str, str]]:
    """The reference read naively (every field of the shipped text is one line), as an
    oracle independent of ``ikefilter.refdoc``."""
    text = REFERENCE.read_text("utf-8").replace("\u00a0", " ")
    entries = {}
    for block in re.split(r"\n(?=2\.23\.\d+\. \[ID:)", text)[1:]:
        lines = block.split("\n")
        head = re.match(r"2\.23\.(\d+)\. \[ID: (\d+)\] (.*)", lines[0])
        fields = {"section": f"2.23.{head[1]}", "title": head[3]}
        for i, line in enumerate(lines):
            if line in ("Log Categories", "Log Message", "Default Log Severity", "Parameters"):
                fields[line] = lines[i + 1].strip()
        entries[int(head[2])] = fields
    return entries


@pytest.fixture(scope="session")
def cat() -> catalog.Catalog:
    return catalog.load()


@pytest.fixture
def pipeline() -> Pipeline:
    return Pipeline()


def child_env() -> dict[str, str]:
    """The environment of a child ``python -m ikefilter``: the package under test first."""
    env = dict(os.environ)
    root = str(Path(ikefilter.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    return env


def ikefilter_cmd(*args: str, stdin: bytes = b"", cwd: Path | None = None,
                  timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m ikefilter ARGS`` as a child process, its output captured."""
    return subprocess.run([sys.executable, "-m", "ikefilter", *args], input=stdin, cwd=cwd,
                          capture_output=True, env=child_env(), timeout=timeout)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
