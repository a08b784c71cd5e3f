"""The documentation runs: every docstring example in the package, every README code block and
every python block of the documentation site (docs/), which has a page for every public layer."""

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


# Like the README's and the site's examples below, on one backend: the layers and models they
# show are tested on every backend elsewhere.
@pytest.mark.torch_only
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


# The README's and the site's examples run on one backend (PyTorch, which compiles nothing):
# the layers, models and estimators they show are tested on every backend elsewhere. A block
# written for one backend runs on that backend.
@pytest.mark.torch_only
@pytest.mark.parametrize("index", range(len(_readme_blocks())))
def test_readme_code_blocks_run(index, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(_readme_blocks()[index], f"README.md[python block {index}]", "exec"), {})


# --- the documentation site (docs/) ---------------------------------------------------------
# Every ```python block of docs/**/*.md runs, each in a fresh namespace and an empty folder, on
# the PyTorch backend (see the README's blocks above). A block written for another backend is
# preceded by an HTML comment (invisible on the site):
#     <!-- docs-test: backend=jax -->
# and runs on that backend only. A block that cannot run in one test
# process (a script for several processes) says why: <!-- docs-test: skip=the-reason -->.

DOCS = ROOT / "docs"
_DOCS_BLOCK = re.compile(
    r"^(?:<!--\s*docs-test:\s*(?P<directive>[^>]*?)\s*-->\n)?```python\n(?P<code>.*?)^```",
    flags=re.DOTALL | re.MULTILINE,
)


def _docs_pages():
    return sorted(DOCS.rglob("*.md"))


def _docs_blocks():
    blocks = []
    for path in _docs_pages():
        name = path.relative_to(DOCS).as_posix()
        for index, match in enumerate(_DOCS_BLOCK.finditer(path.read_text(encoding="utf-8"))):
            text = match["directive"] or ""
            if text.startswith("skip="):  # a free-text reason
                directive = {"skip": text[len("skip="):]}
            else:
                directive = dict(item.split("=", 1) for item in text.split() if "=" in item)
            where = f"{name}[{index}]"
            blocks.append(pytest.param(where, match["code"], directive, id=where))
    return blocks


def test_docs_python_blocks_are_all_found():
    # A ```python fence that the pattern above misses (indented in a list or an admonition,
    # or with attributes) would never run: keep every python block at the start of a line.
    for path in _docs_pages():
        text = path.read_text(encoding="utf-8")
        fences = len(re.findall(r"```\s*python", text)) + len(re.findall(r"```\s*py\b", text))
        assert fences == len(_DOCS_BLOCK.findall(text)), f"{path}: a python block is not tested"


@pytest.mark.parametrize(("where", "code", "directive"), _docs_blocks())
def test_docs_code_blocks_run(where, code, directive, tmp_path, monkeypatch):
    import keras

    if "skip" in directive:
        pytest.skip(directive["skip"])
    backend = directive.get("backend", "torch")
    if backend != keras.backend.backend():
        pytest.skip(
            f"this block is written for the {backend} backend" if "backend" in directive
            else "the examples run on the PyTorch backend"
        )
    monkeypatch.chdir(tmp_path)
    exec(compile(code, f"docs/{where}", "exec"), {"__name__": "__docs__"})


def _public_layers():
    import tabattn.layers

    return sorted(tabattn.layers.__all__)


def test_every_public_layer_has_a_page():
    # docs/layers/<Name>.md for every name in tabattn.layers.__all__, and no page for another.
    pages = {path.stem for path in (DOCS / "layers").glob("*.md")} - {"index"}
    assert pages == set(_public_layers())


@pytest.mark.parametrize("name", _public_layers())
def test_layer_page_renders_its_layer_and_is_in_the_nav(name):
    page = (DOCS / "layers" / f"{name}.md").read_text(encoding="utf-8")
    assert page.startswith(f"# {name}\n")
    assert f"::: tabattn.layers.{name}\n" in page  # the parameters, from the docstring
    assert "```python\n" in page  # a runnable example
    assert f"layers/{name}.md" in (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert f"]({name}.md)" in (DOCS / "layers" / "index.md").read_text(encoding="utf-8")
