"""The package's shape: layers whose imports only point down, a config layer that
imports no framework, and functions and modules small enough to read at once."""

import ast
import pathlib
import subprocess
import sys

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "s2s_jax"
# Bottom to top; a module may import from its own layer and the ones below it.
LAYERS = (
    "config",
    "runtime",
    "data",
    "models",
    "decoding",
    "evaluation",
    "training",
    "serving",
    "top",
)
TOP_LEVEL = {"main", "registries", "__init__"}  # the modules of s2s_jax/ itself: "top"


def _layer(module: str) -> str:
    """``s2s_jax.models.cells`` -> ``models``; ``s2s_jax.main`` -> ``top``."""
    first = module.split(".")[1] if "." in module else "__init__"
    return "top" if first in TOP_LEVEL else first


def _modules() -> dict[str, ast.Module]:
    modules = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules[".".join(parts)] = ast.parse(path.read_text(), str(path))
    return modules


def _imported(module: str, tree: ast.Module) -> set[str]:
    """The s2s_jax modules (or packages) ``tree`` imports, anywhere in it."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return {name for name in names if name.startswith("s2s_jax.")}


def test_every_module_belongs_to_a_layer():
    assert {_layer(module) for module in _modules()} <= set(LAYERS)


def test_imports_only_point_down():
    upward = []
    for module, tree in _modules().items():
        rank = LAYERS.index(_layer(module))
        for name in _imported(module, tree):
            layer = _layer(name)
            if layer in LAYERS and LAYERS.index(layer) > rank:
                upward.append(f"{module} imports {name} ({_layer(module)} -> {layer})")
    assert not upward, "\n".join(sorted(upward))


def test_the_check_sees_an_upward_import():
    tree = ast.parse("from s2s_jax.training import train")
    assert _layer(next(iter(_imported("s2s_jax.models.cells", tree)))) == "training"


def test_reading_a_config_imports_no_framework():
    code = (
        "import sys, s2s_jax.config as c; c.validate(c.base_config()); "
        "print(sorted(m for m in ('tensorflow', 'tensorflow_datasets', 'flax', 'jax') "
        "if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


def _functions(tree: ast.Module):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield node.name, node.end_lineno - node.lineno + 1


def test_modules_and_functions_are_small():
    """No module over 400 lines, no function over 60 (``base_config`` may be longer)."""
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = len(path.read_text().splitlines())
        if lines > 400:
            long.append(f"{path.relative_to(PACKAGE)}: {lines} lines")
        long += [
            f"{path.relative_to(PACKAGE)}: {name}() has {length} lines"
            for name, length in _functions(ast.parse(path.read_text()))
            if length > 60 and name != "base_config"
        ]
    assert not long, "\n".join(long)
