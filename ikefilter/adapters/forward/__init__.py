"""Fluent Forward protocol v1 adapter: a server in front of a record processor, and an
at-least-once client to the next forward hop.

Apart from :mod:`.command`, the package depends on nothing else in ikefilter but what the
adapters share (the msgpack walker, :mod:`..batching`'s collector pause and line encoder): the
server only calls
``processor.process_records(records: list[dict], times) -> list[object | None]`` once per
batch. Its modules: :mod:`.protocol` (the protocol's API in one import: :mod:`.framing`,
:mod:`.frames`, :mod:`.lenient`, :mod:`.entries`, :mod:`.handshake`), :mod:`.server`
(``ForwardServer``), :mod:`.service` (``serve``, ``run``), :mod:`.upstream`
(``UpstreamClient``), :mod:`.output`, :mod:`.tls` and :mod:`.tls_port` (the TLS listener),
:mod:`.command` (the ``forward`` command). Nothing is imported here, so that registering
the command does not load asyncio and ssl.
"""
