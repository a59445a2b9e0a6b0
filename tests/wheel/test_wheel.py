"""The wheel a site would install: built from this checkout, installed in a fresh venv with
nothing else, and the README's quick start run with it (``tox -e build``, which CI runs).

Skipped where the ``build`` package is missing (the unit-test environments).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

pytest.importorskip("build", reason="needs the build package: run it with `tox -e build`")

ROOT = Path(__file__).resolve().parents[2]


def sh(*cmd: str, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    assert result.returncode == 0, f"{' '.join(cmd)}:\n{result.stdout[-3000:]}\n" \
        f"{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A fresh venv with the wheel of this checkout installed: its bin directory."""
    work = tmp_path_factory.mktemp("wheel")
    sh(sys.executable, "-m", "build", "--wheel", "--outdir", str(work / "dist"), str(ROOT))
    [wheel] = (work / "dist").glob("ikefilter-*.whl")
    venv.create(work / "venv", with_pip=True, clear=True)
    bin_dir = work / "venv" / "bin"
    sh(str(bin_dir / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
       str(wheel))
    return bin_dir


def quick_start() -> str:
    """The README's quick start command, as written."""
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    [command] = re.findall(r"^pip install \. && (.+)$", section, re.M)
    return command


def test_the_quick_start_runs_from_the_wheel(installed, tmp_path):
    command = quick_start()
    assert command == "ikefilter generate --count 1000 | ikefilter run"
    # Away from the checkout, with only the venv on PATH: nothing can come from the tree.
    env = {"PATH": f"{installed}{os.pathsep}/usr/bin:/bin", "HOME": str(tmp_path)}
    result = sh("sh", "-c", command, cwd=tmp_path, env=env)
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(docs) == 1000
    assert all(d["event"]["module"] == "clavister" and d["ecs"]["version"] for d in docs)
    assert "in=1000 out=1000 dropped=0" in result.stderr
    where = sh(str(installed / "python"), "-c", "import ikefilter; print(ikefilter.__file__)",
               cwd=tmp_path, env=env).stdout
    assert str(ROOT) not in where and "site-packages" in where


def test_the_wheel_ships_the_catalog_and_its_sources(installed, tmp_path):
    env = {"PATH": f"{installed}{os.pathsep}/usr/bin:/bin", "HOME": str(tmp_path)}
    shown = sh(str(installed / "ikefilter"), "catalog", "show", cwd=tmp_path, env=env).stdout
    assert ": 28 messages" in shown
    files = sh(str(installed / "python"), "-c",
               "from ikefilter import catalog; print(sorted(p.name for p in "
               "catalog.data_dir().iterdir()))", cwd=tmp_path, env=env).stdout
    for name in ("ike.json", "ike-ecs.toml", "cos-stream-log-reference-ike.txt"):
        assert name in files
