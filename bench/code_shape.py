"""The shape of zoo's code, for issue 19's before/after: module sizes, the longest functions, and import
cycles among zoo's modules (module-level and function-level imports, from the AST; no import runs).

    python bench/code_shape.py [ROOT] [--top N]
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def modules(root: Path) -> dict[str, Path]:
    found = {}
    for path in sorted((root / "zoo").rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def functions(path: Path):
    """(qualified name, lines) of every function and method in the file."""
    tree = ast.parse(path.read_text())
    out = []

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((f"{prefix}{child.name}", child.end_lineno - child.lineno + 1))
                walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")
    walk(tree, "")
    return out


def imports(name: str, path: Path, known: set[str], module_level: bool = False) -> set[str]:
    """zoo modules `name` imports anywhere in its file (a function-level import counts too, unless
    `module_level`)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    for node in (tree.body if module_level else ast.walk(tree)):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                found.add(target)
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, result, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return result


def import_graph(root: Path) -> dict[str, set[str]]:
    """zoo's modules and what each imports anywhere in its file; for the facade `zoo/__init__.py`, only its
    module-level imports (the rule: its functions and `__getattr__` import the API lazily, on first use,
    never while a zoo module is loading)."""
    found = modules(root)
    return {name: imports(name, path, set(found), module_level=name == "zoo") for name, path in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=str(Path(__file__).resolve().parent.parent))
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    root = Path(args.root)
    found = modules(root)
    sizes = sorted(((len(p.read_text().splitlines()), n) for n, p in found.items()), reverse=True)
    print(f"{sum(s for s, _ in sizes)} lines in {len(sizes)} modules; over 400: "
          + (", ".join(f"{n} {s}" for s, n in sizes if s > 400) or "none"))
    longest = sorted(((lines, f"{n}.{f}") for n, p in found.items() for f, lines in functions(p)), reverse=True)
    print("longest functions: " + ", ".join(f"{name} {lines}" for lines, name in longest[: args.top]))
    print(f"functions over 60 lines: {sum(1 for lines, _ in longest if lines > 60)}")
    loops = cycles(import_graph(root))
    print("import cycles: " + ("; ".join(" <-> ".join(c) for c in loops) if loops else "none"))


if __name__ == "__main__":
    main()
