"""A client for Modelport: ``modelport`` on the command line, ``Client`` in Python."""

from modelport_client.client import Client, ModelportError

__all__ = ["Client", "ModelportError"]
