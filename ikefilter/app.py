"""Build the pipeline a command runs: site config, plugins, stages.

Every command that processes events calls :func:`add_pipeline_options` on its parser and
:func:`make_pipeline` with the parsed arguments, so they all accept the same options.
"""

from __future__ import annotations

import argparse

from .pipeline import Pipeline


def add_pipeline_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stats", metavar="FILE",
                        help="write the in/out/dropped/quarantined/tagged counts as JSON at exit")


def make_pipeline(args: argparse.Namespace, **overrides) -> Pipeline:
    """The pipeline for one process, built once before the first batch."""
    return Pipeline(**overrides)


def report_stats(pipeline: Pipeline, args: argparse.Namespace) -> None:
    """The counts, on stderr at exit and as JSON in ``--stats FILE``."""
    import logging

    import msgspec

    s = pipeline.stats
    logging.getLogger("ikefilter").info(
        "in=%d out=%d dropped=%d quarantined=%d tagged=%d", s.in_, s.out, s.dropped,
        s.quarantined, s.tagged,
    )
    path = getattr(args, "stats", None)
    if path:
        with open(path, "wb") as f:
            f.write(msgspec.json.encode(s) + b"\n")
