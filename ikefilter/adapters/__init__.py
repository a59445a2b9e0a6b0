"""Adapters: how each pipeline engine hands records to the core and takes them back.

:mod:`.lines` (stdin/stdout, ``ikefilter run``), :mod:`.msgpack_stream` (Fluentd's
``exec_filter``), :mod:`.syslogng` (a syslog-ng Python parser), :mod:`.mmexternal`
(rsyslog), :mod:`.forward` (a Fluent Forward hop); :mod:`.batching` and
:mod:`.msgpack_framing` are what they share. Adapters import the core; the core never
imports an adapter, and an adapter never imports another.
"""
