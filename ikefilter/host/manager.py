"""The plugin manager: every plugin loaded in a fixed order, and checked.

The order is fixed, like tox's: blocked names (``--disable-plugin`` and ``disable_plugins``
in the config), installed plugins from the entry-point group ``ikefilter``, the built-in
plugins (``redact``, ``severity``), the config's ``plugins`` load list, then each
``--plugin MODULE_OR_FILE``. It ends with ``check_pending()``: an implementation of a hook
that does not exist is a start-up error.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import os
import sys
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pluggy

from .. import hookspecs

log = logging.getLogger("ikefilter")

ENTRY_POINT_GROUP = "ikefilter"
PROJECT = "ikefilter"
HOOK_PREFIX = "ikefilter_"

# name -> "module:factory"; a fresh object per manager, so no state is shared between two.
BUILTIN_PLUGINS = {
    "redact": "ikefilter.plugins.redact:RedactPlugin",
    "severity": "ikefilter.plugins.severity:SeverityPlugin",
    "tunnels": "ikefilter.plugins.tunnels:TunnelsPlugin",
}


class PluginError(Exception):
    """A plugin cannot be loaded or configured; the text names it."""


# -- building the manager -------------------------------------------------------------------


def build_manager(
    load: Sequence[str] = (),
    disable: Iterable[str] = (),
    *,
    entry_points: bool = True,
    builtins: bool = True,
    objects: Sequence[object] = (),
) -> pluggy.PluginManager:
    """A new plugin manager with every plugin loaded, in the fixed order, and checked.

    :param load: plugins to add last, each a module name, a ``.py`` file path, or either
        followed by ``:ATTRIBUTE`` to register an object from it (``pkg.mod:plugin``).
    :param disable: plugin names never to register (entry point, built-in, module or file
        stem names).
    :param entry_points: load the installed plugins of the ``ikefilter`` entry-point group.
    :param builtins: register the built-in ``redact`` and ``severity`` plugins.
    :param objects: plugin objects to register last (tests, embedding), each named by its
        ``name`` attribute or its class name.
    :raises PluginError: naming the plugin that cannot be loaded, or the unknown hook.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(hookspecs)
    disabled = list(dict.fromkeys(disable))
    for name in disabled:
        pm.set_blocked(name)
    known: set[str] = set()
    if entry_points:
        known.update(ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP))
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except Exception as exc:
            raise PluginError(
                f"cannot load the installed plugins (entry-point group {ENTRY_POINT_GROUP!r}):"
                f" {type(exc).__name__}: {exc}"
            ) from exc
    if builtins:
        for name, ref in BUILTIN_PLUGINS.items():
            known.add(name)
            module, _, attr = ref.partition(":")
            _register(pm, getattr(importlib.import_module(module), attr)(), name, ref)
    for spec in load:
        name, plugin = _load(spec)
        known.add(name)
        if pm.is_registered(plugin):
            log.debug("plugin %s is already registered as %s", spec, pm.get_name(plugin))
            continue
        _register(pm, plugin, name, spec)
    for plugin in objects:
        name = getattr(plugin, "name", None) or getattr(plugin, "__name__", None) \
            or type(plugin).__name__
        known.add(name)
        _register(pm, plugin, name, "object")
    unknown = [name for name in disabled if name not in known]
    if unknown:
        raise PluginError(
            f"cannot disable {', '.join(map(repr, unknown))}: no such plugin"
            f" (known: {', '.join(sorted(known)) or 'none'})"
        )
    # pluggy's check_pending(), with the plugin named once and the hooks listed
    for hook_name, caller in vars(pm.hook).items():
        if getattr(caller, "has_spec", None) is None or caller.has_spec():
            continue
        for impl in caller.get_hookimpls():
            if not getattr(impl, "optionalhook", False):
                raise PluginError(f"plugin {impl.plugin_name!r}: unknown hook {hook_name!r}"
                                  f" (the hooks are {', '.join(_spec_names())})")
    for name, plugin in pm.list_name_plugin():
        if plugin is not None:
            _check_plugin(pm, name, plugin)
    return pm


def _register(pm: pluggy.PluginManager, plugin: object, name: str, source: str) -> None:
    loaded = pm.get_plugin(name)
    if loaded is not None:
        dists = {id(p): dist for p, dist in pm.list_plugin_distinfo()}
        raise PluginError(f"plugin {name!r} ({source}): a plugin of this name is already "
                          f"loaded ({_source(name, loaded, dists.get(id(loaded)))}): load it "
                          "one way only")
    try:
        pm.register(plugin, name=name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        raise PluginError(f"plugin {name!r} ({source}): {exc}") from None


def _load(spec: str) -> tuple[str, object]:
    """``MODULE``, ``FILE.py``, optionally ``:ATTRIBUTE`` -> (plugin name, plugin object).

    The name is the module's, the file's stem, or for an attribute the object's own
    ``name`` (else ``MODULE:ATTRIBUTE``).
    """
    target, _, attr = spec.rpartition(":") if has_attr(spec) else (spec, "", "")
    if target.endswith(".py") or os.sep in target or "/" in target:
        path = Path(target)
        name = path.stem
        module = _import_file(path, spec)
    else:
        name = target
        try:
            module = importlib.import_module(target)
        except Exception as exc:
            raise PluginError(f"plugin {spec!r}: cannot import: {type(exc).__name__}: {exc}") \
                from exc
    if not attr:
        return name, module
    try:
        plugin = getattr(module, attr)
    except AttributeError:
        raise PluginError(f"plugin {spec!r}: module has no attribute {attr!r}") from None
    own = getattr(plugin, "name", None)
    return (own if isinstance(own, str) and own else f"{name}:{attr}"), plugin


def has_attr(spec: str) -> bool:
    # "C:\\dir\\x.py" is a path, not "C" plus an attribute.
    head, sep, tail = spec.rpartition(":")
    return bool(sep) and tail.isidentifier() and len(head) > 1


def _import_file(path: Path, spec: str) -> ModuleType:
    if not path.is_file():
        raise PluginError(f"plugin {spec!r}: no such file")
    module_name = f"ikefilter_site_plugin_{path.stem}"
    loader_spec = importlib.util.spec_from_file_location(module_name, path)
    if loader_spec is None or loader_spec.loader is None:
        raise PluginError(f"plugin {spec!r}: cannot load this file as Python")
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    try:
        loader_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise PluginError(f"plugin {spec!r}: {type(exc).__name__}: {exc}") from exc
    return module


def _check_plugin(pm: pluggy.PluginManager, name: str, plugin: object) -> None:
    """Reject what pluggy would accept silently: unmarked ``ikefilter_*`` functions
    (a missing ``@hookimpl`` means the hook is never called) and wrapper implementations."""
    implemented = {caller.name for caller in pm.get_hookcallers(plugin) or ()}
    for attr in dir(plugin):
        if attr.startswith(HOOK_PREFIX) and attr not in implemented:
            if callable(getattr(plugin, attr, None)):
                known = ", ".join(_spec_names())
                raise PluginError(
                    f"plugin {name!r}: {attr} is not a hook implementation: mark it with"
                    f" @ikefilter.hookimpl and use one of {known}"
                )
    for caller in pm.get_hookcallers(plugin) or ():
        for impl in caller.get_hookimpls():
            if impl.plugin is plugin and (impl.wrapper or impl.hookwrapper):
                raise PluginError(f"plugin {name!r}: {caller.name} cannot be a wrapper")


def _spec_names() -> list[str]:
    return [n for n, _ in inspect.getmembers(hookspecs, inspect.isfunction)
            if n.startswith(HOOK_PREFIX)]


def hook_impls(pm: pluggy.PluginManager, hook_name: str) -> list[pluggy.HookImpl]:
    """The implementations of a hook in the order pluggy would call them."""
    return list(reversed(getattr(pm.hook, hook_name).get_hookimpls()))


def call_impl(impl: pluggy.HookImpl, **kwargs: Any) -> Any:
    return impl.function(*[kwargs[name] for name in impl.argnames])


# -- describing what is loaded --------------------------------------------------------------


class PluginRow(msgspec.Struct):
    name: str
    source: str
    hooks: list[str]
    tables: list[str]


def describe(pm: pluggy.PluginManager, owners: dict[str, str] | None = None) -> list[PluginRow]:
    """What is loaded, where from, and which hooks each plugin implements."""
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    rows = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        hooks = sorted(c.name.removeprefix(HOOK_PREFIX) for c in pm.get_hookcallers(plugin) or ())
        tables = sorted(t for t, owner in (owners or {}).items() if owner == name)
        rows.append(PluginRow(name, _source(name, plugin, dists.get(id(plugin))), hooks, tables))
    return rows


def _source(name: str, plugin: object, dist: Any) -> str:
    if dist is not None:
        return f"entry point, {dist.project_name} {dist.version}"
    if name in BUILTIN_PLUGINS:
        return f"built-in, {BUILTIN_PLUGINS[name]}"
    module = plugin if isinstance(plugin, ModuleType) else sys.modules.get(type(plugin).__module__)
    path = getattr(module, "__file__", None)
    label = getattr(module, "__name__", "?")
    return f"{label} ({path})" if path else label
