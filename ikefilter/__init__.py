"""ikefilter: Clavister IKE/IPsec log lines in, Elastic Common Schema documents out."""

from __future__ import annotations

import pluggy

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("ikefilter")
"""Marker for site plugin hook implementations: ``@ikefilter.hookimpl``."""

__all__ = ["hookimpl", "__version__"]
