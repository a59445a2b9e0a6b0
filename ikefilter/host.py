"""The plugin host: builds the plugin manager, configures it, and runs the batch stages.

Nothing is loaded at import time and there is no module-level manager: :func:`start` builds
one per process (and tests build one per test). The order is fixed, like tox's:

1. blocked names (``--disable-plugin`` and ``disable_plugins`` in the config),
2. installed plugins from the entry-point group ``ikefilter``,
3. the built-in plugins (``redact``, ``severity``),
4. the config's ``plugins`` load list, then each ``--plugin MODULE_OR_FILE``,

and ends with ``check_pending()``: an implementation of a hook that does not exist is a
start-up error. :class:`StageRunner` is the ``stages`` callable of
:class:`~ikefilter.pipeline.Pipeline`: enrich, redact, severity, once per batch, with the
fault policy of docs/plugins.md (enrichment fails open, redaction fails closed).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import logging
import os
import stat
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pluggy

from . import __version__, ecs, exits, hookspecs
from .config import ConfigError, PipelineInfo, SiteConfig
from .config import convert as convert_config
from .config import load as load_config
from .pipeline import TAG_INTERNAL_ERROR, Stats

log = logging.getLogger("ikefilter")

ENTRY_POINT_GROUP = "ikefilter"
PROJECT = "ikefilter"
HOOK_PREFIX = "ikefilter_"

# name -> "module:factory"; a fresh object per manager, so no state is shared between two.
BUILTIN_PLUGINS = {
    "redact": "ikefilter.plugins.redact:RedactPlugin",
    "severity": "ikefilter.plugins.severity:SeverityPlugin",
}

TAG_ENRICH_FAILURE = "ikefilter_enrich_failure"
TAG_SEVERITY_FAILURE = "ikefilter_severity_failure"


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
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        # pluggy's text names the plugin by its repr: said once, by name
        what = str(exc).split(" in plugin ")[0]
        raise PluginError(f"plugin {pm.get_name(exc.plugin)!r}: {what} (the hooks are "
                          f"{', '.join(_spec_names())})") from None
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
    target, _, attr = spec.rpartition(":") if _has_attr(spec) else (spec, "", "")
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


def _has_attr(spec: str) -> bool:
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


def _call(impl: pluggy.HookImpl, **kwargs: Any) -> Any:
    return impl.function(*[kwargs[name] for name in impl.argnames])


# -- configuring ----------------------------------------------------------------------------


def claim_tables(pm: pluggy.PluginManager, config: SiteConfig, path: str | None,
                 disabled: Iterable[str] = ()) -> dict[str, str]:
    """Decode each ``[plugins.NAME]`` table into the Struct its plugin claimed, in place.

    :return: table name -> the plugin that claimed it.
    :raises ConfigError: for a table nobody claims, or a key its Struct rejects.
    :raises PluginError: when two plugins claim one table.
    """
    owners: dict[str, str] = {}
    types: dict[str, type] = {}
    for impl in hook_impls(pm, "ikefilter_config_tables"):
        try:
            claimed = dict(_call(impl) or {})
        except Exception as exc:
            raise PluginError(f"plugin {impl.plugin_name!r}: ikefilter_config_tables failed:"
                              f" {type(exc).__name__}: {exc}") from exc
        for table, type_ in claimed.items():
            if table in owners:
                raise PluginError(
                    f"plugins {owners[table]!r} and {impl.plugin_name!r} both claim"
                    f" [plugins.{table}]"
                )
            owners[table] = impl.plugin_name
            types[table] = type_
    text = _read_text(path)
    skip = set(disabled)
    loaded = {name for name, plugin in pm.list_name_plugin() if plugin is not None}
    for table in list(config.plugins):
        if table in types:
            config.plugins[table] = convert_config(
                config.plugins[table], types[table], path or "<config>", text, ("plugins", table)
            )
        elif table not in skip and table not in loaded:
            raise ConfigError(
                f"{path or '<config>'}: plugins.{table}: no loaded plugin reads this table"
                f" (tables claimed: {', '.join(sorted(types)) or 'none'})"
            )
    return owners


def _read_text(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return Path(path).read_text("utf-8", "replace")
    except OSError:
        return None


@dataclass
class Site:
    """The configured plugins of one process and the stage runner over them."""

    pm: pluggy.PluginManager
    config: SiteConfig
    info: PipelineInfo
    runner: StageRunner

    @property
    def keep_original(self) -> bool:
        """Whether the normalizer should keep ``event.original``: always without
        redaction; with it, only so the quarantine can hold the line for replay (the
        runner removes it from every event after the redact stage)."""
        return not self.info.redaction or self.runner.quarantine is not None


def start(
    config: SiteConfig | None = None,
    *,
    config_path: str | None = None,
    load: Sequence[str] = (),
    disable: Iterable[str] = (),
    command: str | None = None,
    entry_points: bool = True,
    plugins: Sequence[object] = (),
) -> Site:
    """Build, configure and return the site for one process.

    :param config: the site config; read from ``config_path`` when None (defaults when
        both are None).
    :param load: plugins named on the command line, loaded after the config's list.
    :param disable: plugin names disabled on the command line, besides the config's.
    :param plugins: plugin objects to register last (tests, embedding).
    :raises ConfigError: for a config problem (file, line, key).
    :raises PluginError: for a plugin that cannot load, or refuses to configure.
    """
    if config is None:
        config = load_config(config_path) if config_path else SiteConfig()
    core = config.ikefilter
    disabled = [*core.disable_plugins, *disable]
    listed = [_relative_to(spec, config_path) for spec in core.plugins]
    pm = build_manager([*listed, *load], disabled, entry_points=entry_points, objects=plugins)
    claim_tables(pm, config, config_path, disabled)
    builtin_redact = pm.get_plugin("redact")
    redaction = config.redact.enabled or any(
        impl.plugin is not builtin_redact for impl in hook_impls(pm, "ikefilter_redact")
    )
    info = PipelineInfo(command=command, config_path=config_path, redaction=redaction,
                        version=__version__)
    for impl in hook_impls(pm, "ikefilter_configure"):
        try:
            _call(impl, config=config, info=info)
        except (ConfigError, PluginError):
            raise
        except Exception as exc:
            raise PluginError(f"plugin {impl.plugin_name!r} cannot start: {exc}") from exc
    quarantine = None
    if redaction and core.quarantine:
        quarantine = Quarantine(_resolve(core.quarantine, config_path))
    runner = StageRunner.from_manager(pm, redaction=redaction, quarantine=quarantine,
                                      config=config)
    return Site(pm, config, info, runner)


def _relative_to(spec: str, config_path: str | None) -> str:
    """A plugin file in the config's load list is relative to the config file."""
    target, sep, attr = spec.rpartition(":") if _has_attr(spec) else (spec, "", "")
    if target.endswith(".py") or "/" in target or os.sep in target:
        return _resolve(target, config_path) + sep + attr
    return spec


def _resolve(path: str, config_path: str | None) -> str:
    if config_path is None or os.path.isabs(path):
        return path
    return os.path.join(os.path.dirname(os.path.abspath(config_path)), path)


# -- the quarantine -------------------------------------------------------------------------


class QuarantineRecord(msgspec.Struct, rename={"timestamp": "@timestamp"}):
    """One line of the quarantine file: an event a redaction plugin failed on."""

    timestamp: str
    stage: str
    plugin: str
    error: str
    code: str | None
    original: str | None


class Quarantine:
    """The dead-letter file for events that could not be redacted.

    It holds each event's original line, unredacted, so an operator can replay it once the
    plugin is fixed: the file is created ``0600`` and refused when it is readable by group
    or others. It is never the output stream.
    """

    def __init__(self, path: str):
        self.path = path
        self.encoder = msgspec.json.Encoder()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(f"quarantine file {path}: cannot open ({exc.strerror})") from None
        mode = os.fstat(fd).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            os.close(fd)
            raise ConfigError(
                f"quarantine file {path} is open to group or others (mode {mode & 0o777:04o});"
                f" it holds unredacted lines: chmod 600 it"
            )
        self.file = os.fdopen(fd, "ab")

    def write(self, records: list[QuarantineRecord]) -> None:
        self.file.write(self.encoder.encode_lines(records))
        self.file.flush()

    def close(self) -> None:
        self.file.close()


# -- the stage runner -----------------------------------------------------------------------


@dataclass
class _Impl:
    name: str
    call: Callable[[list[ecs.Event]], Any]


@dataclass
class _Stage:
    name: str
    fails_closed: bool
    tag: str | None
    impls: list[_Impl]


STAGES = (
    # hook, stage name, fails closed, tag when it fails open
    ("ikefilter_enrich", "enrich", False, TAG_ENRICH_FAILURE),
    ("ikefilter_redact", "redact", True, None),
    ("ikefilter_severity", "severity", False, TAG_SEVERITY_FAILURE),
)


class StageRunner:
    """The ``stages`` callable of a Pipeline: enrich, redact, severity, once per batch.

    Each implementation is called on its own (never one pluggy call per stage), so a plugin
    that raises neither hides its error nor skips the others. Counts go to :attr:`stats`:
    bind it to the pipeline's with :meth:`bind`.
    """

    def __init__(self, stages: list[_Stage], *, redaction: bool = False,
                 quarantine: Quarantine | None = None, unconfigure: list[_Impl] = ()):
        self.stages = [s for s in stages if s.impls]
        # A site plugin may leave a value no encoder takes (a set, an object): such an
        # event must not take its whole batch down at output. Built-ins are trusted.
        self.check_output = any(
            impl.name not in BUILTIN_PLUGINS for stage in self.stages for impl in stage.impls
        )
        self.redaction = redaction
        self.quarantine = quarantine
        self.stats = Stats()
        self._unconfigure = list(unconfigure)
        self._reported: set[tuple[str, str]] = set()
        self._closed = False

    @classmethod
    def from_manager(cls, pm: pluggy.PluginManager, *, redaction: bool = False,
                     quarantine: Quarantine | None = None,
                     config: SiteConfig | None = None) -> StageRunner:
        stages = [
            _Stage(stage, closed, tag, [_bind(impl) for impl in hook_impls(pm, hook)])
            for hook, stage, closed, tag in STAGES
        ]
        unconfigure = [
            _Impl(impl.plugin_name, lambda impl=impl: _call(impl, config=config))
            for impl in hook_impls(pm, "ikefilter_unconfigure")
        ]
        return cls(stages, redaction=redaction, quarantine=quarantine, unconfigure=unconfigure)

    def bind(self, stats: Stats) -> None:
        """Count into ``stats`` (the pipeline's) from now on."""
        self.stats = stats

    def __call__(self, events: list[ecs.Event]) -> list[ecs.Event | None]:
        out: list[ecs.Event | None] = events
        live = events
        where: list[int] | None = None  # position in ``events`` of each live event
        for stage in self.stages:
            drops: dict[int, str] = {}
            for impl in stage.impls:
                try:
                    result = impl.call(live)
                    if result:
                        _collect(drops, result, impl.name, len(live))
                except Exception as exc:
                    if stage.fails_closed:
                        self._quarantine(live, stage, impl, exc)
                        return [None] * len(events)
                    self._fail_open(live, stage, impl, exc)
            if drops:
                if out is events:
                    out = list(events)
                stats = self.stats
                by_rule = stats.dropped_by_rule
                for i, rule in drops.items():
                    out[where[i] if where is not None else i] = None
                    by_rule[rule] = by_rule.get(rule, 0) + 1
                stats.dropped += len(drops)
                where = [where[i] if where is not None else i
                         for i in range(len(live)) if i not in drops]
                live = [events[i] for i in where]
                if not live:
                    break
        if self.redaction:
            # Whatever the plugins did, the raw line never leaves a redacting process.
            for event in live:
                event.event.original = None
        if self.check_output and live:
            out = self._encodable(events, out, live, where)
        return out

    def _encodable(self, events: list[ecs.Event], out: list[ecs.Event | None],
                   live: list[ecs.Event], where: list[int] | None) -> list[ecs.Event | None]:
        """Replace each event a plugin left unencodable with a tagged failure event."""
        try:
            _check_encoder.encode(live)
            return out
        except (TypeError, ValueError, OverflowError):
            pass
        if out is events:
            out = list(events)
        for i, event in enumerate(live):
            try:
                _check_encoder.encode(event)
            except (TypeError, ValueError, OverflowError) as exc:
                why = f"a site plugin left a value that cannot be encoded ({type(exc).__name__})"
                if ("output", type(exc).__name__) not in self._reported:
                    self._reported.add(("output", type(exc).__name__))
                    log.error("%s; such events are written as tagged %s (logged once)",
                              why, TAG_INTERNAL_ERROR)
                out[where[i] if where is not None else i] = ecs.failure(
                    why, ["clavister", TAG_INTERNAL_ERROR], ecs.now(), code=_plain_code(event))
        return out

    def _fail_open(self, live: list[ecs.Event], stage: _Stage, impl: _Impl,
                   exc: Exception) -> None:
        self._report(stage, impl, exc, f"events go on tagged {stage.tag}")
        why = f"{stage.name} plugin {impl.name} failed ({type(exc).__name__})"
        for event in live:
            event.tag(stage.tag)
            event.add_error(why)

    def _quarantine(self, live: list[ecs.Event], stage: _Stage, impl: _Impl,
                    exc: Exception) -> None:
        where = f"to {self.quarantine.path}" if self.quarantine else "discarded: no quarantine"
        self._report(stage, impl, exc, f"its batches are quarantined ({where})")
        self.stats.quarantined += len(live)
        if self.quarantine is None:
            return
        now = ecs.now()
        records = [
            QuarantineRecord(now, stage.name, impl.name, type(exc).__name__, e.event.code,
                             e.event.original)
            for e in live
        ]
        try:
            self.quarantine.write(records)
        except OSError as err:
            log.error("cannot write the quarantine file %s (%s): %d events lost",
                      self.quarantine.path, err.strerror, len(records))

    def _report(self, stage: _Stage, impl: _Impl, exc: Exception, consequence: str) -> None:
        key = (stage.name, impl.name)
        if key in self._reported:
            log.debug("%s plugin %s failed again", stage.name, impl.name, exc_info=exc)
            return
        self._reported.add(key)
        # With redaction on, an exception's text may hold the values being redacted: the
        # type alone goes to the log, the traceback only at debug level.
        detail = type(exc).__name__ if self.redaction else f"{type(exc).__name__}: {exc}"
        log.error("%s plugin %s failed (%s); %s (logged once)", stage.name, impl.name,
                  detail, consequence)
        log.debug("traceback of %s plugin %s", stage.name, impl.name, exc_info=exc)

    def close(self) -> None:
        """Call every ``ikefilter_unconfigure`` and close the quarantine. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for impl in self._unconfigure:
            try:
                impl.call()
            except Exception as exc:
                log.error("plugin %s failed to unconfigure: %s: %s", impl.name,
                          type(exc).__name__, exc)
        if self.quarantine is not None:
            self.quarantine.close()


_check_encoder = msgspec.json.Encoder()


def _plain_code(event: ecs.Event) -> str | None:
    code = getattr(getattr(event, "event", None), "code", None)
    return code if isinstance(code, str) else None


def _bind(impl: pluggy.HookImpl) -> _Impl:
    fn = impl.function
    if tuple(impl.argnames) == ("events",):
        return _Impl(impl.plugin_name, fn)
    return _Impl(impl.plugin_name, lambda events: fn())


def _collect(drops: dict[int, str], result: Any, plugin: str, n: int) -> None:
    if isinstance(result, dict):
        items = ((i, f"{plugin}:{rule}") for i, rule in result.items())
    else:
        items = ((i, plugin) for i in result)
    for i, rule in items:
        if type(i) is not int or not 0 <= i < n:
            raise TypeError(f"{plugin} returned {i!r}, not an index of the batch (0-{n - 1})")
        drops[i] = rule


# -- the ``plugins`` command ----------------------------------------------------------------


def add_site_options(parser: argparse.ArgumentParser) -> None:
    """``--config``, ``--plugin`` and ``--disable-plugin``: every command that loads plugins."""
    parser.add_argument("--config", metavar="FILE",
                        help="the site config TOML (plugins, redaction, severity rules)")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_FILE",
                        help="load a plugin: a module name or a .py file, optionally"
                             " :ATTRIBUTE (repeatable)")
    parser.add_argument("--disable-plugin", action="append", default=[], metavar="NAME",
                        help="do not load the plugin of this name (repeatable)")


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


def cmd_plugins(args: argparse.Namespace) -> int:
    """List the plugins that load, where each comes from, and the hooks it implements."""
    try:
        config = load_config(args.config) if args.config else SiteConfig()
        disabled = [*config.ikefilter.disable_plugins, *args.disable_plugin]
        listed = [_relative_to(spec, args.config) for spec in config.ikefilter.plugins]
        pm = build_manager([*listed, *args.plugin], disabled)
        owners = claim_tables(pm, config, args.config, disabled)
    except (ConfigError, PluginError) as exc:
        raise exits.Failure(exits.USAGE, str(exc)) from None
    rows = describe(pm, owners)
    if args.json:
        sys.stdout.buffer.write(msgspec.json.encode(rows) + b"\n")
        return 0
    width = max(len(r.name) for r in rows) if rows else 4
    for r in rows:
        tables = f"  [plugins.{', plugins.'.join(r.tables)}]" if r.tables else ""
        print(f"{r.name:<{width}}  {', '.join(r.hooks) or '(no hooks)'}{tables}")
        print(f"{'':<{width}}  from {r.source}")
    blocked = [n for n in disabled if pm.is_blocked(n)]
    if blocked:
        print(f"disabled: {', '.join(blocked)}")
    return 0


def register(subparsers: Any) -> None:
    """Add the ``plugins`` command."""
    p = subparsers.add_parser("plugins", help=cmd_plugins.__doc__, description=cmd_plugins.__doc__)
    add_site_options(p)
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=cmd_plugins)
