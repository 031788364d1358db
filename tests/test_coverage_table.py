"""README's table of Keras layers and activations is what the converter does
today: every row is re-made (a small model, converted, run in TF.js against
Keras) and must land where the table says."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e
SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "keras_coverage.py"


def load_script():
    spec = importlib.util.spec_from_file_location("keras_coverage", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def readme_routes(script) -> dict[tuple[str, str], str]:
    block = script.README.read_text().split(script.BEGIN, 1)[1].split(script.END, 1)[0]
    rows = re.findall(r"^\| `([^`]+)` \| (layer|activation) \| ([^|]+?) \|", block, re.MULTILINE)
    return {(name, kind): route for name, kind, route in rows}


def test_readme_coverage_table_is_what_the_converter_does_today():
    script = load_script()
    documented = readme_routes(script)
    assert len(documented) > 150, "the README's table is missing"

    found = {(row["name"], row["kind"]): row["route"] for row in script.rows()}

    changed = {key: (documented.get(key), route) for key, route in found.items() if documented.get(key) != route}
    assert not changed, f"run `make coverage` to refresh README.md: (README, now) {changed}"
    assert set(documented) == set(found)
