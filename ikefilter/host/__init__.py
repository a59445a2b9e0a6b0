"""The plugin host: builds the plugin manager, configures it, and runs the batch stages.

Nothing is loaded at import time and there is no module-level manager: :func:`start` builds
one per process (and tests build one per test). The order is fixed, like tox's:

1. blocked names (``--disable-plugin`` and ``disable_plugins`` in the config),
2. installed plugins from the entry-point group ``ikefilter``,
3. the built-in plugins (``redact``, ``severity``),
4. the config's ``plugins`` load list, then each ``--plugin MODULE_OR_FILE``,

and ends with ``check_pending()``: an implementation of a hook that does not exist is a
start-up error. The parts: :mod:`.manager` (loading and checking), :mod:`.site`
(``start``), :mod:`.stages` (:class:`StageRunner`) and :mod:`.quarantine`.
:class:`StageRunner` is the ``stages`` callable of :class:`~ikefilter.pipeline.Pipeline`:
enrich, redact, severity, once per batch, with the fault policy of docs/plugins.md
(enrichment fails open, redaction fails closed).
"""

from .manager import BUILTIN_PLUGINS, PluginError, build_manager, describe, hook_impls
from .quarantine import Quarantine, QuarantineRecord
from .site import Site, add_site_options, claim_tables, start
from .stages import TAG_ENRICH_FAILURE, TAG_SEVERITY_FAILURE, StageRunner

__all__ = [
    "BUILTIN_PLUGINS",
    "TAG_ENRICH_FAILURE",
    "TAG_SEVERITY_FAILURE",
    "PluginError",
    "Quarantine",
    "QuarantineRecord",
    "Site",
    "StageRunner",
    "add_site_options",
    "build_manager",
    "claim_tables",
    "describe",
    "hook_impls",
    "start",
]
