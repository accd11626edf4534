"""The declared plugin API: everything a plugin needs comes from `zoo` itself (its `__all__`), and the
built-in plugins and the examples use nothing else; the conformance kit is `zoo.testing`."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import zoo

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_FILES = sorted((ROOT / "plugins").rglob("*.py")) + sorted((ROOT / "examples").rglob("*.py"))


def zoo_imports(path: Path) -> list[str]:
    """The zoo modules a file imports from, as written ("zoo", "zoo.loop.data", ...)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if alias.name.split(".")[0] == "zoo"]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "zoo":
            found.append(node.module)
    return found


@pytest.mark.parametrize("path", PLUGIN_FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_and_examples_import_only_the_declared_api(path):
    allowed = {"zoo", "zoo.testing"} if "tests" in path.parts else {"zoo"}
    assert set(zoo_imports(path)) <= allowed, f"{path.name} imports {set(zoo_imports(path)) - allowed}"


def test_every_declared_name_resolves():
    for name in zoo.__all__:
        assert getattr(zoo, name) is not None, name
    assert set(zoo.__all__) <= set(dir(zoo))
    with pytest.raises(AttributeError, match="no attribute 'nothing_like_this'"):
        zoo.nothing_like_this  # noqa: B018


def test_importing_zoo_and_listing_stay_torch_free():
    code = "import sys, zoo; zoo.list_models(); zoo.list_tasks(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_the_plugin_api_table_in_the_docs_names_every_lazy_name():
    table = (ROOT / "docs" / "plugins.md").read_text(encoding="utf-8")
    missing = [name for name in zoo.__all__ if f"`{name}`" not in table]
    assert not missing, f"docs/plugins.md does not describe {missing}"
