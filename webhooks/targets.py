"""Where webhooks may be sent. A registry that POSTs to any URL a user names
can be made to reach its own network (SSRF), so targets on loopback, private,
link-local or otherwise non-public addresses are refused unless
MODELPORT_WEBHOOKS_ALLOW_PRIVATE allows them (the `make run` development
server allows loopback only). The check runs when a hook is made and again
before each delivery, against every address the name resolves to."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from django.conf import settings


class TargetRefused(Exception):
    pass


def check(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise TargetRefused("A webhook URL must be http:// or https:// with a host.")
    if parts.username or parts.password:
        raise TargetRefused("A webhook URL must not carry a user name or password; use the secret.")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or (443 if parts.scheme == "https" else 80))
    except (socket.gaierror, UnicodeError):
        raise TargetRefused(f"The host '{parts.hostname}' does not resolve.") from None
    allowed = settings.WEBHOOKS_ALLOW_PRIVATE
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if address.is_global:
            continue
        if allowed == "all" or (allowed == "loopback" and address.is_loopback):
            continue
        raise TargetRefused(
            f"'{parts.hostname}' resolves to {address}, which is not a public address; "
            "webhooks to loopback or private networks are off on this server (MODELPORT_WEBHOOKS_ALLOW_PRIVATE)."
        )
