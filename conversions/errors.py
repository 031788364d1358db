from __future__ import annotations


class ConversionError(Exception):
    """The upload cannot be converted; the message is shown to the user as is.

    ``parity`` carries the TF.js-vs-TensorFlow figures when the conversion
    ran but its predictions were off."""

    def __init__(self, message: str, parity: dict | None = None):
        super().__init__(message)
        self.parity = parity


class SystemFailure(Exception):
    """Modelport failed (storage, sandbox crash); retrying may succeed."""
