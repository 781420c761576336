"""Framework internals stay in streams/worker/compat.py: no other module touches a private name.

Every module of the packages below is parsed (not imported) and checked for: an attribute
with a leading underscore read, written or called on anything but ``self``/``cls``
(``getattr`` and friends with such a name too); a private name imported from Faust, mode or
aiokafka; and, in a class built on one of their classes, a private method of theirs
overridden or a private attribute of theirs used through ``self``. A class's own private
state is fine. The one module allowed all of it says which versions it was checked against.
"""

from __future__ import annotations

import ast
import importlib
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("streams", "detectors", "topics", "sim", "benchmarks")
COMPAT = Path("streams/worker/compat.py")
FRAMEWORKS = ("faust", "mode", "aiokafka")
OWN = ("self", "cls")
ATTRIBUTE_FUNCTIONS = ("getattr", "setattr", "hasattr", "delattr")


def _own(value: ast.expr) -> bool:
    """``self``, ``cls`` or ``super()``: the object's own names, or its class hierarchy's (a
    framework base's private names are caught per class, by :func:`_class_violations`)."""
    if isinstance(value, ast.Name):
        return value.id in OWN
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "super"
        and not value.args
    )


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _framework(module: str) -> bool:
    return module.split(".")[0] in FRAMEWORKS


class _Imports:
    """What the names bound by a module's imports refer to (dotted paths)."""

    def __init__(self, tree: ast.Module) -> None:
        self.names: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.asname:
                        self.names[alias.asname] = alias.name
                    else:
                        head = alias.name.split(".")[0]
                        self.names[head] = head
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    self.names[alias.asname or alias.name] = f"{node.module}.{alias.name}"

    def dotted(self, expr: ast.expr) -> str | None:
        if isinstance(expr, ast.Name):
            return self.names.get(expr.id)
        if isinstance(expr, ast.Attribute):
            head = self.dotted(expr.value)
            return f"{head}.{expr.attr}" if head else None
        return None


def _resolve(dotted: str) -> object | None:
    """The object a dotted path names, importing its module (None if it cannot be found)."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for part in parts[cut:]:
                found = getattr(found, part)
        except AttributeError:
            return None
        return found
    return None


def _framework_ancestors(
    node: ast.ClassDef, imports: _Imports, local: dict[str, ast.ClassDef]
) -> list[type]:
    """The Faust, mode and aiokafka classes ``node`` is built on, through imported or local
    base classes."""
    found: list[type] = []
    for base in node.bases:
        if isinstance(base, ast.Name) and base.id in local and local[base.id] is not node:
            found += _framework_ancestors(local[base.id], imports, local)
            continue
        dotted = imports.dotted(base)
        resolved = _resolve(dotted) if dotted else None
        if isinstance(resolved, type):
            found += [c for c in resolved.__mro__ if _framework(c.__module__)]
    return found


def _own_names(node: ast.ClassDef) -> set[str]:
    """Names a class defines itself: in its body, or assigned to ``self`` in its methods."""
    names: set[str] = set()
    for item in node.body:
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(item.name)
        elif isinstance(item, ast.Assign | ast.AnnAssign):
            targets = item.targets if isinstance(item, ast.Assign) else [item.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    for sub in ast.walk(node):
        if isinstance(sub, ast.Assign | ast.AugAssign | ast.AnnAssign):
            targets = sub.targets if isinstance(sub, ast.Assign) else [sub.target]
            for target in targets:
                if (
                    isinstance(target, ast.Attribute)
                    and isinstance(target.value, ast.Name)
                    and target.value.id == "self"
                ):
                    names.add(target.attr)
    return names


def _class_violations(
    node: ast.ClassDef, imports: _Imports, local: dict[str, ast.ClassDef]
) -> list[str]:
    ancestors = _framework_ancestors(node, imports, local)
    if not ancestors:
        return []

    def theirs(name: str) -> bool:
        return any(name in vars(c) or name in getattr(c, "__annotations__", {}) for c in ancestors)

    found = []
    for item in node.body:
        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and _private(item.name):
            if theirs(item.name):
                found.append(f"{item.lineno}: {node.name} overrides {item.name}")
    own = _own_names(node)
    for sub in ast.walk(node):
        if (
            isinstance(sub, ast.Attribute)
            and _own(sub.value)
            and _private(sub.attr)
            and (theirs(sub.attr) or sub.attr not in own)
        ):
            found.append(f"{sub.lineno}: {node.name} uses its framework base's {sub.attr}")
    return found


def violations(source: str) -> list[str]:
    """Uses of private names that only the compat module may make, as ``line: what``."""
    tree = ast.parse(source)
    imports = _Imports(tree)
    local = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            if not _own(node.value):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            args = node.args
            if (
                node.func.id in ATTRIBUTE_FUNCTIONS
                and len(args) >= 2
                and isinstance(args[1], ast.Constant)
                and isinstance(args[1].value, str)
                and _private(args[1].value)
                and not (isinstance(args[0], ast.Name) and args[0].id in OWN)
            ):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
        elif isinstance(node, ast.ImportFrom) and node.module and _framework(node.module):
            names = [*node.module.split("."), *(alias.name for alias in node.names)]
            if any(_private(name) for name in names):
                found.append(f"{node.lineno}: from {node.module} import a private name")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if _framework(alias.name) and any(_private(p) for p in alias.name.split(".")):
                    found.append(f"{node.lineno}: import {alias.name}")
        elif isinstance(node, ast.ClassDef):
            found += _class_violations(node, imports, local)
    return found


def _modules() -> list[Path]:
    return sorted(
        path.relative_to(ROOT)
        for package in PACKAGES
        if (ROOT / package).is_dir()
        for path in (ROOT / package).rglob("*.py")
    )


def test_no_module_but_compat_touches_private_names() -> None:
    modules = _modules()
    assert COMPAT in modules and len(modules) > 40, "the packages were found"
    found = {str(path): violations((ROOT / path).read_text()) for path in modules if path != COMPAT}
    assert not {path: lines for path, lines in found.items() if lines}, (
        "private names of other objects or of Faust/mode/aiokafka outside "
        f"{COMPAT}: move the use there, behind a plain function"
    )


def test_the_compat_module_is_where_the_internals_are() -> None:
    found = "\n".join(violations((ROOT / COMPAT).read_text()))
    for use in (
        "consumer._thread",
        "fetcher._ensure_consumer",
        "QuietWorker overrides _setup_spinner_handler",
        "InputTopic overrides _compile_decode",
        "App overrides _new_transport",
        "Consumer overrides _drain_messages",
    ):
        assert use in found, use


@pytest.mark.parametrize(
    "snippet",
    [
        "consumer._acked.get(tp)",
        "consumer._committed_offset[tp] = 3",
        "app.consumer._read_offset.clear()",
        """
        from faust import App

        class A(App):
            def transport(self):
                return super()._new_transport()
        """,
        "getattr(consumer, '_buffered_partitions', ())",
        "from faust.transport._cython import x",
        "from aiokafka.consumer.fetcher import _private_thing",
        """
        import faust

        class W(faust.Worker):
            def _setup_spinner_handler(self, logger, level):
                return None
        """,
        """
        from faust import App

        class A(App):
            def transport(self):
                return self._new_transport()
        """,
        """
        import faust

        class Base(faust.Topic):
            pass

        class Sub(Base):
            def _compile_decode(self):
                pass
        """,
    ],
)
def test_a_private_name_outside_compat_is_flagged(snippet: str) -> None:
    assert violations(textwrap.dedent(snippet))


@pytest.mark.parametrize(
    "snippet",
    [
        """
        class Store:
            def __init__(self):
                self._hot = {}

            def get(self, key):
                return self._hot.get(key)

            @classmethod
            def make(cls):
                return cls._default()
        """,
        """
        from mode import Service

        class Reader(Service):
            @Service.task
            async def _read(self):
                self._seen = 1
                return self._seen
        """,
        "value.__class__.__name__",
        "from faust.types import TP",
    ],
)
def test_own_private_state_and_public_names_are_fine(snippet: str) -> None:
    assert violations(textwrap.dedent(snippet)) == []


def test_a_subclass_of_our_own_may_call_its_base_through_super() -> None:
    source = """
from detectors.engine import Engine

class Tagging(Engine):
    def _fire(self, partitions):
        return super()._fire(partitions)
"""
    assert violations(source) == []
