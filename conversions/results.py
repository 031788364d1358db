"""Check what the sandbox reports before any of it is believed.

The converter ran on untrusted input, so its result.json is untrusted too:
only well-typed, bounded fields are kept, and a malformed result is the
upload's fault (a converter made to misbehave), never a reason to retry.
"""

from __future__ import annotations

import math

from converter import companions
from converter.errors import ConversionError
from converter.formats import INPUT_FORMATS, OUTPUT_FORMATS, VARIANTS


def checked_result(result: dict) -> dict:
    """The converter's result with only well-typed fields; raises
    ConversionError for a failed conversion (with its parity figures)."""
    if not isinstance(result.get("ok"), bool):
        raise ConversionError("The converter wrote an unreadable result for this file.")
    input_format = result.get("input_format")
    checked = {"input_format": input_format if input_format in INPUT_FORMATS else ""}
    figures = clean_parity(result.get("parity"))
    if not result["ok"]:
        raise ConversionError(
            str(result.get("error") or "The conversion failed.")[:2000], parity=figures, facts=checked
        )
    if result.get("output_format") not in OUTPUT_FORMATS:
        raise ConversionError("The converter reported an unknown output format.")
    if figures is None:
        raise ConversionError("The converter reported no parity figures.")
    return {
        **checked,
        "output_format": result["output_format"],
        "graph_reason": str(result.get("graph_reason") or "")[:2000],
        "converter_version": str(result.get("converter_version", ""))[:32],
        "parity": figures,
        "variants": clean_variants(result.get("variants")),
        "layers": clean_layers(result.get("layers")),
        "companions": clean_companions(result.get("companions")),
        "skipped_files": clean_skipped(result.get("skipped_files")),
    }


def clean_companions(names) -> list[str]:
    """Companion names the child reports; any it may not report fail the upload."""
    if names is None:
        return []
    if (
        not isinstance(names, list)
        or len(names) > companions.MAX_COUNT
        or not all(isinstance(name, str) and not companions.name_refusal(name) for name in names)
    ):
        raise ConversionError("The converter reported companion files a model cannot have.")
    return sorted(set(names))


def clean_skipped(files) -> list[dict]:
    if not isinstance(files, list):
        return []
    return [
        {"name": str(item.get("name", ""))[:120], "reason": str(item.get("reason", ""))[:300]}
        for item in files[:100]
        if isinstance(item, dict)
    ]


def _shape(value):
    if value is None or isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, list) and len(value) <= 64:
        return [_shape(item) for item in value]
    raise ValueError("not a shape")


def clean_layers(layers) -> list[dict]:
    """Keep only well-typed layer descriptions from the untrusted child."""
    if not isinstance(layers, list):
        return []
    try:
        return [
            {
                "name": str(layer["name"])[:255],
                "class_name": str(layer["class_name"])[:100],
                "output_shape": _shape(layer.get("output_shape")),
            }
            for layer in layers[:5000]
        ]
    except (KeyError, TypeError, ValueError):
        return []


def clean_variants(variants) -> dict:
    """Keep only well-typed variant outcomes from the untrusted child."""
    if not isinstance(variants, dict):
        return {}
    cleaned = {}
    for quantization in VARIANTS:
        outcome = variants.get(quantization)
        if isinstance(outcome, dict):
            ok = outcome.get("ok") is True
            figures = clean_parity(outcome.get("parity"))
            if ok and figures is None:
                ok, outcome = False, {"error": "The variant was not checked against TensorFlow."}
            cleaned[quantization] = {"ok": ok, "error": str(outcome.get("error") or "")[:2000], "parity": figures}
    return cleaned


def clean_parity(figures) -> dict | None:
    """Keep only well-typed parity figures from the untrusted child."""
    if not isinstance(figures, dict):
        return None
    try:
        if figures.get("reference") == "none":  # a TF.js upload: run, but nothing to compare with
            cleaned = {"reference": "none"}
        else:
            cleaned = {key: float(figures[key]) for key in ("max_abs_error", "max_rel_error", "atol", "rtol")}
        cleaned["passed"] = bool(figures["passed"])
        cleaned["inputs"] = [
            {
                "name": str(item["name"])[:200],
                "shape": [int(d) for d in item["shape"]][:16],
                "dtype": str(item["dtype"])[:16],
            }
            for item in list(figures.get("inputs", []))[:64]
        ]
    except (KeyError, TypeError, ValueError):
        return None
    return cleaned


BACKEND_STATUSES = ("passed", "failed", "error")
BACKEND_FIGURES = ("max_abs_error", "max_rel_error", "atol", "rtol", "load_ms", "first_predict_ms")


def clean_backends(result: dict, asked: list[str]) -> dict:
    """Per-backend outcomes of a browser check, well-typed; a backend the
    child said nothing sensible about is an error, not a pass."""
    if result.get("ok") is not True:
        message = str(result.get("error") or "The browser check failed.")[:500]
        return {name: {"status": "error", "error": message} for name in asked}
    reported = result.get("backends") if isinstance(result.get("backends"), dict) else {}
    cleaned = {}
    for name in asked:
        outcome = reported.get(name)
        if not isinstance(outcome, dict) or outcome.get("status") not in BACKEND_STATUSES:
            cleaned[name] = {"status": "error", "error": "The browser check reported nothing for this backend."}
            continue
        entry = {"status": outcome["status"], "error": str(outcome.get("error") or "")[:500]}
        try:
            figures = {key: float(outcome[key]) for key in BACKEND_FIGURES if key in outcome}
            if not all(math.isfinite(value) and value >= 0 for value in figures.values()):
                raise ValueError("not a finite, non-negative figure")
            entry.update(figures)
        except (TypeError, ValueError, OverflowError):
            entry = {"status": "error", "error": "The browser check reported unreadable figures."}
        cleaned[name] = entry
    return cleaned
