"""The ctypes declarations match the header: every function of
include/liminal.h is declared, with as many parameters as the header gives
it (a guard against the ABI moving under the binding)."""

from __future__ import annotations

import os
import re

import pytest

from liminal import _ffi

HEADER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "include", "liminal.h")


def header_functions():
    with open(HEADER, encoding="utf-8") as f:
        text = re.sub(r"/\*.*?\*/", "", f.read(), flags=re.S)
    functions = {}
    for match in re.finditer(r"LIMINAL_EXPORT\s+[^;{]*?\b(liminal_\w+)\s*\(([^)]*)\)\s*;", text):
        name, params = match.group(1), match.group(2).strip()
        functions[name] = 0 if params in ("", "void") else params.count(",") + 1
    return functions


@pytest.mark.skipif(not os.path.exists(HEADER), reason="not run from a checkout")
def test_every_header_function_is_declared_with_its_arity():
    functions = header_functions()
    assert len(functions) > 100
    declared = {name: len(getattr(_ffi.lib, name).argtypes) for name in functions
                if getattr(_ffi.lib, name).argtypes is not None}
    assert sorted(set(functions) - set(declared)) == []
    assert {n: a for n, a in declared.items() if a != functions[n]} == {}


def test_the_metrics_struct_has_every_field():
    assert _ffi.C.sizeof(_ffi.Metrics) == 8 * len(_ffi.METRIC_NAMES) == 8 * 28
