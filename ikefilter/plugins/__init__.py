"""The built-in plugins: redaction (``[redact]``) and severity remapping (``[severity]``).

They are registered through the same hooks as a site's own plugins, and can be disabled by
name (``redact``, ``severity``) like any other.
"""
