"""Every public construct documents its props and attributes so that an IDE shows them on hover
(Google style ``Args:`` / ``Attributes:``, as aws-cdk-lib documents every prop)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import pytest
from constructs import Construct

import mlstack.constructs
import mlstack.stacks

MODULES = [
    importlib.import_module(f"{package.__name__}.{info.name}")
    for package in (mlstack.constructs, mlstack.stacks)
    for info in pkgutil.iter_modules(package.__path__)
    if not info.name.startswith("_")
]
# Every Construct class of a public module, exported from the package or not.
PUBLIC = sorted(
    {
        obj
        for module in MODULES
        for name, obj in vars(module).items()
        if inspect.isclass(obj)
        and issubclass(obj, Construct)
        and obj.__module__ == module.__name__
        and not name.startswith("_")
    },
    key=lambda cls: cls.__name__,
)
# A Google-style section: "Args:" then entries "name (type): text" or "name: text", indented.
ENTRY = re.compile(r"^\s+(\w+)(?: \([^)]*\))?:(?:\s|$)")


def section(doc: str, title: str) -> list[str]:
    """The names documented in the ``title`` section of ``doc``."""
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == f"{title}:")
    except StopIteration:
        return []
    indent = len(lines[start]) - len(lines[start].lstrip())
    names = []
    for line in lines[start + 1 :]:
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        match = ENTRY.match(line)
        if match and len(line) - len(line.lstrip()) == indent + 4:
            names.append(match.group(1))
    return names


def keyword_props(cls: type) -> list[str]:
    signature = inspect.signature(cls.__init__)
    return [
        name
        for name, parameter in signature.parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    ]


def test_there_are_public_constructs_to_check() -> None:
    assert len(PUBLIC) >= 10


@pytest.mark.parametrize("cls", PUBLIC, ids=lambda cls: cls.__name__)
def test_public_construct_documents_each_keyword_prop_under_args(cls: type) -> None:
    documented = section(inspect.cleandoc(cls.__dict__.get("__doc__") or ""), "Args")
    missing = [prop for prop in keyword_props(cls) if prop not in documented]
    assert not missing, f"{cls.__name__} docstring 'Args:' lacks {missing}"
    unknown = [name for name in documented if name not in keyword_props(cls)]
    assert not unknown, f"{cls.__name__} docstring 'Args:' names no prop {unknown}"


@pytest.mark.parametrize("cls", PUBLIC, ids=lambda cls: cls.__name__)
def test_public_construct_documents_its_attributes(cls: type) -> None:
    assert section(inspect.cleandoc(cls.__dict__.get("__doc__") or ""), "Attributes"), (
        f"{cls.__name__} docstring has no 'Attributes:' section"
    )
