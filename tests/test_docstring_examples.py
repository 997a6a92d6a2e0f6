"""The examples in the package's docstrings run, and say what they print."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import convscope

#: scripts for ParaView's own Python (they import ``paraview``; pvpython runs them, see tests/paraview)
_NOT_HERE = ("convscope.paraview.pipelines",)


def _modules() -> list[str]:
    names = [m.name for m in pkgutil.walk_packages(convscope.__path__, "convscope.")]
    return sorted(n for n in ["convscope", *names] if not n.startswith(_NOT_HERE))


@pytest.mark.parametrize("name", _modules())
def test_the_examples_in_the_docstrings_of(name: str) -> None:
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    for test in finder.find(module, name):
        if test.examples:
            runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} docstring examples in {name} failed (printed above)"
