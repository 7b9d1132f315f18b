"""The conformance suite shipped with poolbridge: collected by the plugin, one row per module
section; see :mod:`poolbridge.testing.requirements` for what each row proves."""
