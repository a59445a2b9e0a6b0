"""The ``ikefilter`` command."""

from __future__ import annotations

import argparse
import itertools
import logging
import signal
import sys
from pathlib import Path

import msgspec

from . import __version__, app, catalog, exits, generate, host, template
from .adapters import batching, lines, mmexternal, sniff
from .adapters.forward import command as forward_command
from .config import ConfigError, SiteConfig
from .config import load as load_config
from .generate import sessions

log = logging.getLogger("ikefilter")


def cmd_run(args: argparse.Namespace) -> int:
    """Filter lines from stdin (or files) to ECS JSON lines on stdout, one per input line."""
    # Every input (and, in make_pipeline, the stats file) is checked before the first line is
    # read: a mistake in the last name must not leave the first files written and the rest not.
    sniff.check_files(args.files, args.input_format)
    pipeline = app.make_pipeline(args, write_derived=True)  # a stream: derived events fit
    progress = lines.Progress(bool(args.files) and lines.stderr_is_terminal())
    try:
        if args.input_format == "msgpack":
            from .adapters import msgpack_stream

            for source in lines.open_sources(args.files):
                msgpack_stream.run(pipeline, source, sys.stdout.buffer,
                                   output_format=args.output_format)
        else:
            encode = None
            if args.output_format == "msgpack":
                from .adapters.msgpack_stream import maps_encoder

                encode = maps_encoder()
            lines.run(pipeline, lines.open_sources(args.files), sys.stdout.buffer, progress,
                      encode)
    finally:
        app.report_stats(pipeline, args)
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """Print realistic synthetic lines for every catalog message in every wire shape."""
    if args.sessions is not None:
        return sessions.command(args)
    if args.truth:
        raise exits.Failure(exits.USAGE, "--truth goes with --sessions: the day's ground truth")
    shapes = tuple(args.shape) if args.shape else None
    variants = tuple(args.variant or ())
    with exits.reading(catalog.CatalogError):
        cat = catalog.load(args.catalog)
    try:
        produced = generate.lines(cat, args.count, args.seed, shapes,
                                  mix=args.mix, variants=variants)
        first = next(produced, None)
    except ValueError as exc:
        raise exits.Failure(exits.USAGE, str(exc)) from None
    generate.write(produced if first is None else itertools.chain((first,), produced),
                   sys.stdout)
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    """List the plugins that load, where each comes from, and the hooks it implements."""
    try:
        config = load_config(args.config) if args.config else SiteConfig()
        pm, owners, disabled = host.site.loaded(config, args.config, args.plugin,
                                                args.disable_plugin)
    except (ConfigError, host.PluginError) as exc:
        raise exits.Failure(exits.USAGE, str(exc)) from None
    rows = host.describe(pm, owners)
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


def cmd_catalog_build(args: argparse.Namespace) -> int:
    """Build the catalog JSON from a Log Reference text and its curated ECS mapping."""
    source = Path(args.source)
    curated = Path(args.mapping) if args.mapping else source.with_name("ike-ecs.toml")
    with exits.reading():
        text, mapping = source.read_bytes(), curated.read_bytes()
    try:
        built = catalog.build(text.decode("utf-8"), mapping, source.name)
    except UnicodeDecodeError:
        raise exits.Failure(exits.INPUT, f"{source}: not UTF-8 text (the Log Reference "
                            "chapter saved as text)") from None
    except ValueError as exc:  # CatalogError, and a reference the reader cannot follow
        raise exits.Failure(exits.INPUT, f"{source} with mapping {curated}: {exc}") from None
    data = catalog.dumps(built)
    if args.output == "-":
        sys.stdout.buffer.write(data)
    else:
        with exits.writing():
            Path(args.output).write_bytes(data)
        log.info("wrote %d messages to %s", len(built.messages), args.output)
    return 0


def cmd_catalog_show(args: argparse.Namespace) -> int:
    """Print catalog entries for a person (all, or the IDs given)."""
    with exits.reading(catalog.CatalogError):
        cat = catalog.load(args.catalog)
    by_id = cat.by_id()
    if args.json:
        picked = [by_id[i] for i in args.ids] if args.ids else cat.messages
        sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(picked), indent=2) + b"\n")
        return 0
    if not args.ids:
        print(f"{cat.chapter} {cat.title}: {len(cat.messages)} messages (from {cat.source})\n")
        for m in sorted(cat.messages, key=lambda m: m.id):
            print(f"{m.id:>5}  {m.severity:<12} {m.ecs.action:<32} {m.message}")
        return 0
    missing = [i for i in args.ids if i not in by_id]
    if missing:
        raise exits.Failure(exits.USAGE, f"no message with ID {', '.join(map(str, missing))} "
                            "(`ikefilter catalog show` lists them)")
    for i in args.ids:
        m = by_id[i]
        print(f"[ID: {m.id}] {m.message}   (section {m.section})")
        rows = [
            ("Categories", ", ".join(m.categories)),
            ("Severity", f"{m.severity} ({m.severity_code})"),
            ("Parameters", ", ".join(m.parameters) or "(none)"),
            ("Explanation", m.explanation),
            ("Gateway action", m.gateway_action),
            ("Action description", m.action_description),
            ("Proposed action", m.proposed_action),
            ("event.action", m.ecs.action),
            ("event.category", ", ".join(m.ecs.category)),
            ("event.type", ", ".join(m.ecs.type)),
            ("event.outcome", m.ecs.outcome or "(none)"),
        ]
        for k, v in rows:
            print(f"  {k:<20}{v}")
        print()
    return 0


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value}: a count is 0 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = exits.Parser(
        prog="ikefilter",
        description="Decode Clavister IKE/IPsec log lines and normalize them to ECS.",
    )
    parser.add_argument("--version", action="version", version=f"ikefilter {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug detail to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help=cmd_run.__doc__, description=cmd_run.__doc__)
    p.add_argument("files", nargs="*", metavar="FILE", help="files to read (default: stdin)")
    p.add_argument("--input-format", choices=["auto", "msgpack"], default="auto",
                   help="auto: text or JSON lines; msgpack: a stream of msgpack maps")
    p.add_argument("--output-format", choices=["ecs", "msgpack"], default="ecs",
                   help="ecs: JSON lines; msgpack: the ECS documents as msgpack maps")
    app.add_pipeline_options(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser(
        "generate", help=cmd_generate.__doc__, description=cmd_generate.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="shapes: " + ", ".join(generate.ALL_SHAPES) + "\n\nvariants (--variant):\n"
        + generate.variant_help(),
    )
    p.add_argument("--count", type=_count, default=1000, help="number of lines (default 1000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--shape", action="append", choices=generate.ALL_SHAPES, metavar="SHAPE",
                   help="only this wire shape (repeatable; default: every shape of the mix; "
                   "with --variant: bracketed)")
    p.add_argument("--mix", choices=generate.MIXES, default="clean",
                   help="clean: every message in every shape, values as the catalog writes "
                   "them (the default); wild: a site's day, every shape interleaved, about "
                   "half the lines with a variant, a few per cent other records")
    p.add_argument("--variant", action="append", choices=tuple(generate.VARIANTS),
                   metavar="VARIANT", help="every line carries this variant and no other "
                   "(repeatable; listed below); not with --mix wild")
    p.add_argument("--catalog", help="a built catalog JSON (default: the shipped one)")
    p.add_argument("--sessions", type=_count, metavar="PEERS", help="instead: a day of "
                   "tunnel sessions of this many peers, in time order (docs/tunnels.md)")
    p.add_argument("--truth", metavar="FILE", help="with --sessions: write the day's ground "
                   "truth (every tunnel, the flapping peers) as JSON")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("catalog", help="build or show the message catalog")
    csub = p.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")
    b = csub.add_parser("build", help=cmd_catalog_build.__doc__,
                        description=cmd_catalog_build.__doc__)
    b.add_argument("source", help="the Log Reference chapter as text")
    b.add_argument("--mapping",
                   help="curated ECS mapping TOML (default: ike-ecs.toml beside SOURCE)")
    b.add_argument("-o", "--output", default="-", help="where to write the JSON (default: stdout)")
    b.set_defaults(func=cmd_catalog_build)
    s = csub.add_parser("show", help=cmd_catalog_show.__doc__, description=cmd_catalog_show.__doc__)
    s.add_argument("ids", nargs="*", type=int, metavar="ID")
    s.add_argument("--json", action="store_true", help="print the entries as JSON")
    s.add_argument("--catalog", help="a built catalog JSON (default: the shipped one)")
    s.set_defaults(func=cmd_catalog_show)

    p = sub.add_parser("plugins", help=cmd_plugins.__doc__, description=cmd_plugins.__doc__)
    host.add_site_options(p)
    p.add_argument("--json", action="store_true", help="print the list as JSON")
    p.set_defaults(func=cmd_plugins)

    forward_command.register(sub)
    mmexternal.register(sub)
    template.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except exits.Failure as exc:
        return exits.report(exc, "ikefilter", argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="ikefilter: %(levelname)s: %(message)s",
    )
    # SIGTERM ends the command the way end of input does, between batches: the counts are
    # reported and the status is 143. (forward installs its own handler and drains.)
    signal.signal(signal.SIGTERM, batching.on_sigterm)
    try:
        return args.func(args)
    except exits.Failure as exc:
        words = ("ikefilter", args.command, getattr(args, "catalog_command", None))
        return exits.report(exc, " ".join(filter(None, words)))
    except batching.Terminated:
        return 128 + signal.SIGTERM
    except BrokenPipeError:
        # The reader went away (a `| head`): not an error of ours.
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        return 130
    except OSError as exc:
        # A file or a port that is not there or not ours to use: one line, not a traceback.
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"ikefilter {args.command}: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    except (msgspec.DecodeError, msgspec.ValidationError, catalog.CatalogError) as exc:
        print(f"ikefilter {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
