"""The example in python/README.md runs as shown."""

from __future__ import annotations

import os
import re

import pytest

README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "README.md")


@pytest.mark.skipif(not os.path.exists(README), reason="not run from a checkout")
def test_the_readme_example_runs(capsys):
    with open(README, encoding="utf-8") as f:
        example = re.search(r"```python\n(.*?)```", f.read(), re.S).group(1)
    exec(compile(example, README, "exec"), {})
    lines = capsys.readouterr().out.splitlines()
    assert "b ('a',)" in lines
    assert lines[-1] == "orders"
