"""The import directions of docs/architecture.md, checked on the source: every module sits in
one room and imports only its own room and the rooms above it in the doc's table."""

from __future__ import annotations

import ast
import re
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

# The source tree (tox tests an installed wheel, which has neither docs nor this check's
# subject elsewhere): the modules as written, and the doc beside them.
ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ikefilter"
DOC = ROOT / "docs" / "architecture.md"

ADAPTER_SHARED = ("batching", "msgpack_framing", "sniff")
PLUGIN_MAY_IMPORT = ("ikefilter", "config", "ecs", "values", "severity", "identity", "plugins.*")


def rooms() -> list[tuple[str, list[str]]]:
    """(room, module patterns) from the doc's table, top room first."""
    found = []
    for line in DOC.read_text("utf-8").splitlines():
        m = re.match(r"\|\s*([a-z]+)\s*\|((?:\s*`[^`]+`,?)+)\s*\|", line)
        if m:
            found.append((m[1], re.findall(r"`([^`]+)`", m[2])))
    return found


def modules() -> dict[str, Path]:
    """Every module of the package by its name relative to it (``ikefilter`` for the
    package itself, ``host.stages``, ``adapters.forward.server``)."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts) or "ikefilter"] = path
    return out


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package's modules that ``name`` imports, anywhere in it (lazy imports too)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    if name == "ikefilter":
        package = []
    found = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                target = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.split(".")[0] == "ikefilter":
                target = node.module.split(".")[1:]
            else:
                continue
            for alias in node.names:
                sub = ".".join([*target, alias.name])
                found.add(sub if sub in known else ".".join(target) or "ikefilter")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "ikefilter":
                    found.add(".".join(alias.name.split(".")[1:]) or "ikefilter")
    found.discard(name)
    return found


def room_of(name: str, table: list[tuple[str, list[str]]]) -> int | None:
    for i, (_, patterns) in enumerate(table):
        if any(fnmatchcase(name, p) or (p.endswith(".*") and name == p[:-2])
               for p in patterns):
            return i
    return None


TABLE = rooms()
MODULES = modules()


def test_the_doc_has_the_rooms():
    assert [room for room, _ in TABLE][:3] == ["base", "catalog", "decode"]
    assert len(TABLE) >= 8


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_is_in_a_room(name):
    assert room_of(name, TABLE) is not None, f"{name} is in no room of docs/architecture.md"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_go_up_the_rooms(name):
    mine = room_of(name, TABLE)
    if mine is None:
        pytest.skip("in no room (reported above)")
    wrong = sorted(
        f"{dep} ({TABLE[room][0]})" for dep in imports(name, MODULES[name], set(MODULES))
        if (room := room_of(dep, TABLE)) is not None and room > mine
    )
    assert not wrong, f"{name} ({TABLE[mine][0]}) imports from rooms below it: {wrong}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("adapters.")))
def test_an_adapter_never_imports_another(name):
    own = name.split(".")[1]
    others = sorted(
        dep for dep in imports(name, MODULES[name], set(MODULES))
        if dep.startswith("adapters.") and dep.split(".")[1] not in (own, *ADAPTER_SHARED)
    )
    assert not others, f"{name} imports other adapters: {others}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("plugins.")))
def test_built_in_plugins_import_what_a_site_plugin_could(name):
    deps = imports(name, MODULES[name], set(MODULES))
    wrong = sorted(d for d in deps if not any(fnmatchcase(d, p) for p in PLUGIN_MAY_IMPORT))
    assert not wrong, f"{name} imports {wrong}"


def test_the_checker_sees_a_wrong_import(tmp_path):
    bad = tmp_path / "wire.py"
    bad.write_text("from .pipeline import Pipeline\nfrom ikefilter.adapters import lines\n")
    assert imports("wire", bad, set(MODULES)) == {"pipeline", "adapters.lines"}
    assert room_of("pipeline", TABLE) > room_of("wire", TABLE)


def test_no_module_is_much_over_400_lines():
    long = {name: n for name, path in MODULES.items()
            if (n := len(path.read_text("utf-8").splitlines())) > 450}
    assert not long, f"modules to split by job: {long}"
