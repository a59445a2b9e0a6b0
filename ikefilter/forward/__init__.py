"""Fluent Forward protocol v1 adapter: a server in front of a record processor, and an
at-least-once client to the next forward hop.

The package depends on nothing else in ikefilter: the server only calls
``processor.process_records(records: list[dict], times) -> list[object | None]`` once per batch.
Its modules: :mod:`.protocol` (frames), :mod:`.server` (``ForwardServer``, ``serve``, ``run``),
:mod:`.upstream` (``UpstreamClient``), :mod:`.command` (the ``forward`` command). Nothing is
imported here, so that registering the command does not load asyncio and ssl.
"""
