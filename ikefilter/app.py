"""Build the pipeline a command runs: site config, plugins, stages.

Every command that processes events calls :func:`add_pipeline_options` on its parser and
:func:`make_pipeline` with the parsed arguments, so they all accept the same options
(``--config``, ``--plugin``, ``--disable-plugin``, ``--stats``, ``--schema``) and refuse a
``--stats`` file they could not write before they start (:func:`check_stats`), and
:func:`report_stats` once at exit.
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

import msgspec

from . import exits, host, ocsf
from .catalog import CatalogError
from .catalog import load as load_catalog
from .config import ConfigError, SiteConfig
from .config import load as load_config
from .pipeline import Pipeline
from .shaping import Shaping

log = logging.getLogger("ikefilter")


class StartupError(exits.Failure, SystemExit):
    """The pipeline cannot start: a config, plugin or catalog problem, said in one line.

    An :class:`exits.Failure` (``status`` is ``USAGE`` or ``INPUT``); also a ``SystemExit``,
    so an uncaught one ends a program with the message on stderr and no traceback; and an
    ``Exception``, so an embedding host (syslog-ng's parser ``init``) that catches
    ``Exception`` reports it and stays up.
    """

    def __init__(self, message: str, status: int = exits.USAGE):
        exits.Failure.__init__(self, status, message)
        self.code = message


def add_pipeline_options(parser: argparse.ArgumentParser) -> None:
    host.add_site_options(parser)
    parser.add_argument("--stats", metavar="FILE",
                        help="write the in/out/dropped/quarantined/tagged counts as JSON at exit")
    parser.add_argument("--catalog", metavar="FILE",
                        help="a built catalog JSON (`ikefilter catalog build`; default: the "
                        "shipped one)")
    parser.add_argument("--schema", choices=ocsf.SCHEMAS,
                        help="the schema of the documents written (default: the site "
                        "config's [output] schema, else ecs; docs/ocsf.md)")


def check_stats(args: argparse.Namespace) -> None:
    """Refuse a ``--stats FILE`` that could not be written at exit: its directory missing or
    not writable, or the file a directory or not writable. Said before any work is done, so
    a long run never ends in a mistake in its last step.

    :raises exits.Failure: :data:`~ikefilter.exits.OUTPUT`, naming the option and the file.
    """
    path = getattr(args, "stats", None)
    if not path:
        return
    target = Path(path)
    parent = target.resolve().parent
    if not parent.is_dir():
        raise exits.Failure(exits.OUTPUT, f"--stats {path}: no such directory")
    if target.is_dir():
        raise exits.Failure(exits.OUTPUT, f"--stats {path}: is a directory")
    effective = os.access in os.supports_effective_ids
    if target.exists():
        if not os.access(target, os.W_OK, effective_ids=effective):
            raise exits.Failure(exits.OUTPUT, f"--stats {path}: not writable")
    elif not os.access(parent, os.W_OK | os.X_OK, effective_ids=effective):
        raise exits.Failure(exits.OUTPUT, f"--stats {path}: directory {parent} not writable")


def make_pipeline(args: argparse.Namespace, **overrides) -> Pipeline:
    """The pipeline for one process, built once before the first batch.

    Reads ``--config``, loads and configures the plugins, and wires the stage runner.
    ``overrides`` are :class:`Pipeline` keyword arguments that win over the config (an
    adapter's own defaults).

    :raises StartupError: for a config or plugin problem, naming the file, key or plugin.
    :raises exits.Failure: a ``--stats`` file that could not be written (:func:`check_stats`).
    """
    check_stats(args)
    try:
        path = getattr(args, "catalog", None)
        if path:
            overrides.setdefault("catalog", load_catalog(path))
        return build_pipeline(
            config_path=getattr(args, "config", None),
            load=getattr(args, "plugin", None) or (),
            disable=getattr(args, "disable_plugin", None) or (),
            command=getattr(args, "command", None),
            schema=getattr(args, "schema", None),
            **overrides,
        )
    except (ConfigError, host.PluginError) as exc:
        raise StartupError(str(exc)) from None
    except CatalogError as exc:
        raise StartupError(str(exc), exits.INPUT) from None
    except OSError as exc:
        raise StartupError(exits.os_error_text(exc), exits.INPUT) from None


def build_pipeline(
    config: SiteConfig | None = None,
    *,
    config_path: str | None = None,
    load: tuple[str, ...] | list[str] = (),
    disable: tuple[str, ...] | list[str] = (),
    command: str | None = None,
    entry_points: bool = True,
    plugins: tuple[object, ...] | list[object] = (),
    schema: str | None = None,
    **overrides,
) -> Pipeline:
    """The library form of :func:`make_pipeline`: raises instead of exiting.

    :raises ConfigError: for a config problem (file, line, key).
    :raises host.PluginError: for a plugin that cannot load or refuses to configure.
    """
    if config is None and config_path:
        config = load_config(config_path)
    site = host.start(config, config_path=config_path, load=load, disable=disable,
                      command=command, entry_points=entry_points, plugins=plugins)
    core = site.config.ikefilter
    schema = schema or site.config.output.schema
    options = {
        "stages": site.runner,
        "source_keys": core.source_keys,
        # Redacted or OCSF output never carries a record as it came: a tagged failure event.
        "non_clavister": core.non_clavister
        or ("tag" if site.info.redaction or schema == "ocsf" else "pass"),
        "severity_dialect": core.severity_dialect,
        "keep_original": site.keep_original,
        "max_line": core.max_line,
        "max_depth": core.max_depth,
        "site": site,
        "render": ocsf.renderer(schema),
        "derive": site.runner.derive,
        "shaping": Shaping(site.config.time, site.config.ecs),
    }
    options.update(overrides)
    pipeline = Pipeline(**options)
    site.runner.bind(pipeline.stats)
    return pipeline


def report_stats(pipeline: Pipeline, args: argparse.Namespace, forward: object = None) -> None:
    """Close the site stages and report the counts: on stderr, and as JSON in ``--stats``
    (``forward``: the forward server's counters, a Struct, added there under ``forward``).

    Call it once, at exit: it also runs the plugins' ``ikefilter_unconfigure`` and closes the
    quarantine file.
    """
    site = pipeline.site
    if site is not None:
        site.runner.close()
    s = pipeline.stats
    log.info(
        "in=%d out=%d dropped=%d quarantined=%d tagged=%d passthrough=%d dropped_by_rule=%s"
        " derived=%d",
        s.in_, s.out, s.dropped, s.quarantined, s.tagged, s.passthrough,
        msgspec.json.encode(s.dropped_by_rule).decode(), s.derived,
    )
    path = getattr(args, "stats", None)
    if path:
        with open(path, "wb") as f:
            counts = s if forward is None else {**msgspec.to_builtins(s),
                                                "forward": msgspec.to_builtins(forward)}
            f.write(msgspec.json.encode(counts) + b"\n")
