"""MkDocs hook: the API reference pages, generated at build time from the package layout.

One page per package with one section per public module (found by ``pkgutil``, so a new module
appears without editing anything), one page per single module, and a page for the parts of the
application layer that users call. mkdocstrings renders every section from the docstrings; an
object it cannot find, or a docstring it cannot parse, fails the strict build.
"""

from __future__ import annotations

import pkgutil
from importlib import import_module
from typing import Any

from mkdocs.structure.files import File, Files

#: (page, package, title): one section per public module of the package.
PACKAGES = (
    ("data", "ebmlab.data", "Datasets"),
    ("models", "ebmlab.models", "Models"),
    ("samplers", "ebmlab.samplers", "Samplers"),
    ("estimators", "ebmlab.estimators", "Estimators"),
    ("objectives", "ebmlab.objectives", "Objectives"),
    ("training", "ebmlab.training", "Training"),
    ("metrics", "ebmlab.metrics", "Metrics"),
)
#: (page, module, title): the module on one page.
MODULES = (
    ("ebmlab", "ebmlab", "ebmlab"),
    ("io", "ebmlab.io", "Checkpoints"),
    ("validation", "ebmlab.validation", "Argument checks"),
    ("sklearn", "ebmlab.sklearn", "scikit-learn estimator"),
    ("stats", "ebmlab.stats", "Statistics"),
    ("partition", "ebmlab.partition", "Partition functions (earlier module name)"),
)
#: The application layer's modules that users and contributors call.
APP_MODULES = ("recipes", "hopfield_experiments", "compare", "report", "viz")

INTRO = """# API reference

Generated from the docstrings. Each package has a page with one section per module; a module's
docstring gives its math and references. "Lecture 00N" in a docstring refers to the
[lectures page](../lectures.md).

"""


def _section(name: str) -> str:
    """A module under its own heading, one level below the page title."""
    return f"::: {name}\n    options:\n      show_root_heading: true\n      heading_level: 2\n"


def _package_page(package: str, title: str) -> str:
    modules = sorted(
        info.name
        for info in pkgutil.iter_modules(import_module(package).__path__)
        if not info.name.startswith("_")
    )
    head = f"# {title}: `{package}`\n\n::: {package}\n    options:\n      members: false\n"
    return "\n".join([head, *(_section(f"{package}.{m}") for m in modules)])


def _pages() -> dict[str, str]:
    pages = {"index": INTRO}
    for slug, package, title in PACKAGES:
        pages[slug] = _package_page(package, title)
    for slug, module, title in MODULES:
        pages[slug] = f"# {title}: `{module}`\n\n::: {module}\n"
    pages["app"] = "\n".join(
        [
            "# Application layer: `ebmlab.app`\n\nThe recipes through which families plug in, the"
            " experiments the command line and the tutorials run, and the figures and tables of"
            " runs. Nothing in the library imports this layer.\n",
            *(_section(f"ebmlab.app.{m}") for m in APP_MODULES),
        ]
    )
    entries = [*MODULES[:1], *PACKAGES, *MODULES[1:], ("app", "ebmlab.app", "Application layer")]
    links = [f"- [{title}: `{name}`]({slug}.md)\n" for slug, name, title in entries]
    pages["index"] += "".join(links)
    return pages


def on_files(files: Files, config: Any) -> Files:
    for slug, content in _pages().items():
        path = f"reference/{slug}.md"
        existing = files.get_file_from_path(path)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, path, content=content))
    return files
