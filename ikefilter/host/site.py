"""One process's site: the config's plugin tables claimed, every plugin configured, and
the stage runner built (:func:`start`).

Nothing is loaded at import time and there is no module-level manager: :func:`start` builds
one per process (and tests build one per test).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pluggy

from .. import __version__
from ..config import ConfigError, PipelineInfo, SiteConfig, resolve
from ..config import convert as convert_config
from ..config import load as load_config
from .manager import PluginError, build_manager, call_impl, has_attr, hook_impls
from .quarantine import Quarantine
from .stages import StageRunner


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
            claimed = dict(call_impl(impl) or {})
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
    pm, _, _ = loaded(config, config_path, load, disable, entry_points=entry_points,
                      objects=plugins)
    builtin_redact = pm.get_plugin("redact")
    redaction = config.redact.enabled or any(
        impl.plugin is not builtin_redact for impl in hook_impls(pm, "ikefilter_redact")
    )
    info = PipelineInfo(command=command, config_path=config_path, redaction=redaction,
                        version=__version__)
    for impl in hook_impls(pm, "ikefilter_configure"):
        try:
            call_impl(impl, config=config, info=info)
        except (ConfigError, PluginError):
            raise
        except Exception as exc:
            raise PluginError(f"plugin {impl.plugin_name!r} cannot start: {exc}") from exc
    quarantine = None
    if redaction and core.quarantine:
        quarantine = Quarantine(resolve(core.quarantine, config_path))
    runner = StageRunner.from_manager(pm, redaction=redaction, quarantine=quarantine,
                                      config=config)
    return Site(pm, config, info, runner)


def loaded(config: SiteConfig, config_path: str | None, load: Sequence[str] = (),
           disable: Iterable[str] = (), *, entry_points: bool = True,
           objects: Sequence[object] = (),
           ) -> tuple[pluggy.PluginManager, dict[str, str], list[str]]:
    """The site's plugins loaded and their ``[plugins.NAME]`` tables claimed, not yet
    configured: the manager, the owner of each table and the names disabled.

    :raises PluginError: for a plugin that cannot load or a table no plugin claims.
    """
    disabled = [*config.ikefilter.disable_plugins, *disable]
    listed = [_relative_to(spec, config_path) for spec in config.ikefilter.plugins]
    pm = build_manager([*listed, *load], disabled, entry_points=entry_points, objects=objects)
    owners = claim_tables(pm, config, config_path, disabled)
    return pm, owners, disabled


def _relative_to(spec: str, config_path: str | None) -> str:
    """A plugin file in the config's load list is relative to the config file."""
    target, sep, attr = spec.rpartition(":") if has_attr(spec) else (spec, "", "")
    if target.endswith(".py") or "/" in target or os.sep in target:
        return resolve(target, config_path) + sep + attr
    return spec


def add_site_options(parser: argparse.ArgumentParser) -> None:
    """``--config``, ``--plugin`` and ``--disable-plugin``: every command that loads plugins."""
    parser.add_argument("--config", metavar="FILE",
                        help="the site config TOML (plugins, redaction, severity rules)")
    parser.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_FILE",
                        help="load a plugin: a module name or a .py file, optionally"
                             " :ATTRIBUTE (repeatable)")
    parser.add_argument("--disable-plugin", action="append", default=[], metavar="NAME",
                        help="do not load the plugin of this name (repeatable)")
