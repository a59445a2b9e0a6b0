"""The two site set-ups every path runs with: no plugins, and redaction plus severity rules.

The ikefilter side is built through the site config and the plugin host, exactly as
``ikefilter run --config FILE`` would build it, so the benchmark follows the product as the
plugin API changes; where a piece is missing the set-up reports ``n/a`` with the reason.
The naive side gets the same rules in its own terms.
"""

from __future__ import annotations

import argparse
import importlib
import os
import tempfile
from dataclasses import dataclass, field

KEY_ENV = "IKEFILTER_BENCH_KEY"
KEY = "benchmark key, not a secret"

# Two rules: one on an action, one on a code. The corpus has both messages.
RULES = (
    {"field": "event.action", "values": ["ike-sa-failed"], "severity": "critical"},
    {"field": "event.code", "values": ["1059"], "severity": "error"},
)

SITE_TOML = f"""\
[redact]
ip = "hmac"
identity = "hmac"
key_env = "{KEY_ENV}"

[[severity.rule]]
action = "ike-sa-failed"
severity = "critical"

[[severity.rule]]
code = 1059
severity = "error"
"""

PLAIN = "plain"
PLUGINS = "redact+sev"
VARIANTS = (PLAIN, PLUGINS)


@dataclass
class Site:
    """How to build one variant, for ikefilter and for the naive filter."""

    variant: str
    naive_kwargs: dict = field(default_factory=dict)
    config_path: str | None = None


def site(variant: str, workdir: str) -> Site:
    if variant == PLAIN:
        return Site(PLAIN)
    os.environ[KEY_ENV] = KEY
    path = os.path.join(workdir, "site.toml")
    with open(path, "w", encoding="utf-8") as f:
        f.write(SITE_TOML)
    return Site(PLUGINS, {"redact_key": KEY.encode(), "severity_rules": RULES}, path)


class NotAvailable(Exception):
    """This set-up cannot be built with the ikefilter present; the text says why."""


def _config_option(parser: argparse.ArgumentParser) -> str | None:
    for action in parser._actions:
        for opt in action.option_strings:
            if opt.startswith("--") and "config" in opt:
                return opt
    return None


def make_pipeline(s: Site, catalog=None):
    """The ikefilter Pipeline for a site; raises :class:`NotAvailable`."""
    from ikefilter.pipeline import Pipeline

    if s.config_path is None:
        return Pipeline(catalog)
    try:
        importlib.import_module("ikefilter.config")
    except ModuleNotFoundError as exc:
        raise NotAvailable(f"no {exc.name} yet") from None
    from ikefilter import app

    parser = argparse.ArgumentParser()
    app.add_pipeline_options(parser)
    option = _config_option(parser)
    if option is None:
        raise NotAvailable("ikefilter.app has no --config option yet")
    args = parser.parse_args([option, s.config_path])
    try:
        pipeline = app.make_pipeline(args)
    except SystemExit as exc:  # a command-line error path
        raise NotAvailable(f"make_pipeline exited ({exc.code})") from None
    except Exception as exc:  # noqa: BLE001 - report whatever the plugin layer raised
        raise NotAvailable(f"make_pipeline failed: {type(exc).__name__}: {exc}") from None
    if getattr(pipeline, "stages", None) is None:
        raise NotAvailable("the site config built no plugin stages (plugins not wired yet)")
    return pipeline


def scratch_dir() -> str:
    return tempfile.mkdtemp(prefix="ikefilter-bench-")
