"""``ikefilter.syslogng.Parser``: the name syslog-ng configs give the parser
(``python(class("ikefilter.syslogng.Parser"))``); it lives in
:mod:`ikefilter.adapters.syslogng`."""

from .adapters.syslogng import Parser

__all__ = ["Parser"]
