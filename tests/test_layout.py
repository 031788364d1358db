"""The trust boundary shows in the layout: the code that reads untrusted
bytes (converter/, run inside the sandbox) never imports Django, the
registry or boto3, and the apps import each other in one direction only."""

from __future__ import annotations

import ast
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
FORBIDDEN_IN_CONVERTER = (
    "django",
    "rest_framework",
    "registry",
    "conversions",
    "modelport",
    "boto3",
    "botocore",
    "celery",
    "storages",
)


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_sandboxed_converter_package_imports_no_server_code():
    offenders = {
        f"{path.relative_to(PROJECT_DIR)}: {name}"
        for path in (PROJECT_DIR / "converter").rglob("*.py")
        for name in imported_modules(path)
        if name.split(".")[0] in FORBIDDEN_IN_CONVERTER
    }
    assert offenders == set()


def test_conversions_never_imports_registry_services_and_registry_never_imports_conversion_internals():
    conversions = {name for path in (PROJECT_DIR / "conversions").rglob("*.py") for name in imported_modules(path)}
    assert "registry.services" not in conversions
    registry = {name for path in (PROJECT_DIR / "registry").rglob("*.py") for name in imported_modules(path)}
    assert {name for name in registry if name.startswith("conversions")} <= {"conversions", "conversions.queue"}


def project_modules() -> dict[str, Path]:
    modules = {}
    for package in ("converter", "conversions", "registry", "modelport"):
        for path in (PROJECT_DIR / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(PROJECT_DIR).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join(parts)] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """Who imports whom among the project's modules, lazy imports included."""
    modules = project_modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                submodules = [f"{node.module}.{alias.name}" for alias in node.names]
                targets = [module for module in submodules if module in modules] or [node.module]
            graph[name] |= {target for target in targets if target in modules and target != name}
    return graph


def test_no_import_cycles_between_project_modules():
    graph = import_graph()
    assert {"conversions.sandbox", "conversions.publish", "registry.models"} <= graph["conversions.services"]
    cycles = []

    def visit(name: str, path: list[str]) -> None:
        for target in sorted(graph[name]):
            if target in path:
                cycles.append(" -> ".join(path[path.index(target) :] + [target]))
            elif target not in done:
                visit(target, [*path, target])
        done.add(name)

    done: set[str] = set()
    for name in sorted(graph):
        if name not in done:
            visit(name, [name])
    assert cycles == []
