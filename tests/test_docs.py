"""The documentation runs: every docstring example in the package and every README code block."""

import doctest
import importlib
import pathlib
import pkgutil
import re

import pytest

import tabattn

ROOT = pathlib.Path(__file__).resolve().parents[1]
SKIP_MODULES = {"tabattn.cli"}  # its docstrings have no examples; importing it is tested elsewhere


def _modules():
    names = ["tabattn"]
    for info in pkgutil.walk_packages(tabattn.__path__, prefix="tabattn."):
        if info.name not in SKIP_MODULES and not info.name.split(".")[-1].startswith("_"):
            names.append(info.name)
    return names


@pytest.mark.parametrize("module_name", _modules())
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {module_name}"


def _readme_blocks():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_readme_has_python_examples():
    assert len(_readme_blocks()) >= 2


@pytest.mark.parametrize("index", range(len(_readme_blocks())))
def test_readme_code_blocks_run(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(_readme_blocks()[index], f"README.md[python block {index}]", "exec"), {})
