from __future__ import annotations


class ConversionError(Exception):
    """The upload cannot be converted; the message is shown to the user as is."""


class SystemFailure(Exception):
    """Modelport failed (storage, sandbox crash); retrying may succeed."""
