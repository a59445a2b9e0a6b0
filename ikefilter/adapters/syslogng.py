"""A syslog-ng Python parser that normalizes Clavister IKE/IPsec lines in-process.

::

    parser p_ike {
        python(class("ikefilter.syslogng.Parser") options("config" "/etc/ikefilter.toml"));
    };

The parser reads the raw line, runs the pipeline on it (a batch of one; the pipeline is built
once, in :meth:`Parser.init`), and stores the ECS document, JSON-encoded, in one name-value
pair (``ike.json`` by default). A destination writes it as is with ``template("${ike.json}\\n")``:
the document keeps its nesting and its types, which a ``format-json`` of flattened pairs
would not (every value would come out a string).

What ``parse`` returns decides where the message goes:

- an IKE event: the document is set, ``True``;
- a message that is not a Clavister line: ``False``, so an ``if { parser(p_ike); } else
  {...}`` block (or a ``flags(fallback)`` log path) takes it unchanged. With
  ``options("non-ike" "tag")`` it is written as an ECS document tagged
  ``ikefilter_not_clavister`` instead;
- an event a site rule dropped or that went to the quarantine: ``True`` with no document, so
  the message never reaches the fallback path with its raw text. The destination must then
  sit behind ``if ("${ike.json}" ne "")``, as in ``docs/examples/syslog-ng.conf``.

Options (``options("name" "value" ...)``):

- ``source-field``: the name-value pair holding the raw line. Default: ``RAWMSG`` (the source
  needs ``flags(store-raw-message)``), else the line rebuilt from ``MSGHDR`` and ``MESSAGE``.
  syslog-ng's RFC 3164 parser takes Clavister's ``[2026-11-26`` for a program name, so
  ``MESSAGE`` alone lacks the start of the line; ``flags(no-parse)`` sources keep the whole
  line in ``MESSAGE``.
- ``output-field``: where the document goes (default ``ike.json``).
- ``non-ike``: ``fallback`` (default) or ``tag``, as above.
- ``args``: more ``ikefilter`` pipeline options as one command-line string, e.g.
  ``"--config /etc/ikefilter.toml --plugin site_rules"``.
- any other name is a pipeline option: ``options("config" "/etc/ikefilter.toml")`` is
  ``--config /etc/ikefilter.toml`` (the same options as ``ikefilter run``).

syslog-ng 3.38 embeds Debian's ``/usr/bin/python3``: install ikefilter into a venv made with
that interpreter and add its site-packages in a ``python {}`` block (see the docs).
"""

from __future__ import annotations

import argparse
import logging
import shlex
import threading

import msgspec

from .. import app

log = logging.getLogger("ikefilter")

DEFAULT_OUTPUT_FIELD = "ike.json"
_OWN_OPTIONS = ("source-field", "output-field", "non-ike", "args")


class _SyslogNgHandler(logging.Handler):
    """Send ikefilter's log records to syslog-ng's own log (stderr with ``-e``, or internal())."""

    def __init__(self, logger):
        super().__init__()
        self.logger = logger

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
            if record.levelno >= logging.ERROR:
                self.logger.error(text)
            elif record.levelno >= logging.WARNING:
                self.logger.warning(text)
            elif record.levelno >= logging.INFO:
                self.logger.info(text)
            else:
                self.logger.debug(text)
        except Exception:
            self.handleError(record)


def _route_logging() -> None:
    try:
        import syslogng  # the module syslog-ng provides to the code it embeds
    except ImportError:
        return
    if not any(isinstance(h, _SyslogNgHandler) for h in log.handlers):
        handler = _SyslogNgHandler(syslogng.Logger())
        handler.setFormatter(logging.Formatter("ikefilter: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def pipeline_args(options: dict) -> tuple[argparse.Namespace, dict]:
    """Split syslog-ng ``options(...)`` into pipeline arguments and the parser's own options."""
    # syslog-ng hands option names over with "-" turned into "_" ("non-ike" -> "non_ike").
    opts = {_text(k).replace("_", "-"): _text(v) for k, v in options.items()}
    own = {k: opts.pop(k) for k in _OWN_OPTIONS if k in opts}
    argv = shlex.split(own.get("args", ""))
    for key, value in opts.items():
        argv += [f"--{key}", value] if value != "" else [f"--{key}"]
    parser = argparse.ArgumentParser(prog="ikefilter.syslogng.Parser", add_help=False)
    app.add_pipeline_options(parser)
    parser.set_defaults(command="syslog-ng")
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        raise ValueError(f"invalid options: {' '.join(map(shlex.quote, argv))}") from None
    return args, own


class Parser:
    """syslog-ng ``python()`` parser: ``init``, ``deinit``, ``parse``."""

    def init(self, options: dict) -> bool:
        _route_logging()
        try:
            self.args, own = pipeline_args(options or {})
            self.source_field = own.get("source-field") or None
            self.output_field = own.get("output-field") or DEFAULT_OUTPUT_FIELD
            non_ike = own.get("non-ike", "fallback")
            if non_ike not in ("fallback", "tag"):
                raise ValueError(f"non-ike must be fallback or tag, not {non_ike!r}")
            overrides = {"non_clavister": "tag"} if non_ike == "tag" else {}
            self.pipeline = app.make_pipeline(self.args, **overrides)
        except Exception as exc:
            log.error("cannot start: %s", exc)
            return False
        self.encode = msgspec.json.Encoder().encode
        self.process_lines = self.pipeline.process_lines
        self.process_records = self.pipeline.process_records
        # syslog-ng may call parse from more than one thread.
        self.lock = threading.Lock()
        return True

    def deinit(self) -> None:
        pipeline = getattr(self, "pipeline", None)
        if pipeline is not None:
            try:
                app.report_stats(pipeline, self.args)
            except Exception as exc:
                log.error("cannot write the stats: %s", exc)

    def parse(self, log_message) -> bool:
        """One message: syslog-ng calls this for every message, so it does only what each
        one needs (the pipeline, encoder and bound calls are built once, in ``init``)."""
        try:
            field = self.source_field
            raw = log_message[field or "RAWMSG"]
            raw = raw.decode("utf-8", "replace") if type(raw) is bytes else _text(raw)
            if not raw and field is None:
                raw = _text(log_message["MSGHDR"]) + _text(log_message["MESSAGE"])
            if raw[:1] == "{":
                with self.lock:
                    result = self.process_lines([raw])[0]
            else:
                record = {"message": raw, "host": _text(log_message["HOST"]),
                          "timestamp": _text(log_message["ISODATE"])}
                with self.lock:
                    result = self.process_records([record])[0]
        except Exception:
            log.exception("message passed on unchanged")
            return False
        if result is None:
            return True  # dropped by a rule or quarantined: written nowhere
        if type(result) is dict:
            return False  # not a Clavister line
        log_message[self.output_field] = self.encode(result)
        return True
