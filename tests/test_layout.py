"""The shape of the source tree, checked: no file over MAX_LINES lines, no function over MAX_FUNCTION lines, no
import loop between files (imports inside functions included), and the layers point down: models/ imports
nothing from the uses (apps/) or the codec (codec/), the codec nothing from the uses."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_LINES, MAX_FUNCTION = 400, 60


def modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its own name)."""
    found = {}
    for path in sorted((SRC / "aekit").rglob("*.py")):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imported(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The package's modules that module `name` imports, anywhere in the file."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, node.module] if node.module else base)
            targets = [f"{module}.{alias.name}" for alias in node.names] + [module]
        elif isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
                break
    return found


def test_no_file_or_function_is_too_long():
    long_files, long_functions = [], []
    for name, path in modules().items():
        text = path.read_text()
        if text.count("\n") > MAX_LINES:
            long_files.append(f"{name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION:
                    long_functions.append(f"{name}.{node.name}: {length} lines")
    assert not long_files and not long_functions, long_files + long_functions


def test_no_import_loop_between_files():
    known = modules()
    graph = {name: imported(name, path, known) for name, path in known.items()}

    def reaches(start: str, goal: str) -> list[str] | None:
        """A chain of imports from start to goal, if there is one (depth first)."""
        stack, seen = [(start, [start])], {start}
        while stack:
            node, chain = stack.pop()
            for nxt in graph[node]:
                if nxt == goal:
                    return chain + [nxt]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, chain + [nxt]))
        return None

    loops = [reaches(b, a) for a in graph for b in graph[a]]
    assert not any(loops), [" -> ".join(loop) for loop in loops if loop][:5]


def test_layers_point_down():
    known = modules()
    upward = [
        f"{name} imports {target}"
        for name, path in known.items()
        for target in imported(name, path, known)
        if (name.startswith("aekit.models") and target.startswith(("aekit.apps", "aekit.codec")))
        or (name.startswith("aekit.codec") and target.startswith("aekit.apps"))
    ]
    assert not upward, upward
