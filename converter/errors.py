from __future__ import annotations


class ConversionError(Exception):
    """The upload cannot be converted; the message is shown to the user as is.

    ``parity`` carries the TF.js-vs-TensorFlow figures when the conversion
    ran but its predictions were off; ``facts`` what was learnt about the
    upload before it failed (its detected ``input_format``)."""

    def __init__(self, message: str, parity: dict | None = None, facts: dict | None = None):
        super().__init__(message)
        self.parity = parity
        self.facts = facts or {}


class NotExpressible(ConversionError):
    """The model is sound, but TF.js layers cannot express it exactly (a
    layer, option or activation tfjs-layers lacks): it can still become a
    graph model. The message says which layer and why."""


class SystemFailure(Exception):
    """Modelport failed (storage, sandbox crash); retrying may succeed."""
