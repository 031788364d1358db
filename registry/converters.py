from __future__ import annotations


class VariantConverter:
    """URL segment naming a variant of a version (a quantization, or graph)."""

    regex = "float16|uint8|uint16|graph"

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
