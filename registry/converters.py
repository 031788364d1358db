from __future__ import annotations


class VariantConverter:
    """URL segment naming a quantized variant of a version."""

    regex = "float16|uint8|uint16"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


class Sha256Converter:
    """URL segment holding a lowercase hex sha256 digest."""

    regex = "[0-9a-f]{64}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value
