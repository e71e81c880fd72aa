#!/usr/bin/env python3
"""The core's import graph, from the `use crate::...` lines of src/.

    scripts/import-graph.py            files that import each other in a circle
    scripts/import-graph.py --edges    every file -> file edge
    scripts/import-graph.py --layers   module -> module edges (top-level folders)

A file is a node (src/dispatch/conversation.rs -> dispatch/conversation). An
import of crate::a::b::c resolves to the longest existing file prefix
(a/b/c.rs, a/b.rs or a/b/mod.rs, a.rs or a/mod.rs). The C ABI (src/ffi) is
left out unless --with-ffi is given: it is the top layer by construction.
Exits 1 when a circle other than the allowed pairs is found.
"""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
# Pairs that are one concept split in two files (none today).
ALLOWED = set()


def node_of(path):
    rel = os.path.relpath(path, SRC)[:-3]
    return rel[: -len("/mod")] if rel.endswith("/mod") else rel


def resolve(parts):
    for n in range(len(parts), 0, -1):
        base = os.path.join(SRC, *parts[:n])
        if os.path.isfile(base + ".rs") or os.path.isfile(os.path.join(base, "mod.rs")):
            return "/".join(parts[:n])
    return None


def imports(text):
    # `use crate::a::b::{c, d::e}` and plain `crate::a::b` paths in code.
    for match in re.finditer(r"crate::((?:[a-z_][a-z0-9_]*::)*)(\{[^}]*\}|[a-zA-Z_][a-zA-Z0-9_]*)", text):
        prefix = [p for p in match.group(1).split("::") if p]
        tail = match.group(2)
        if tail.startswith("{"):
            for item in re.split(r",\s*", tail.strip("{} \n")):
                head = [p for p in item.split("::") if p and p[0].islower() and p != "self"]
                yield prefix + head
        else:
            yield prefix + ([tail] if tail[0].islower() else [])


def graph(with_ffi):
    edges = {}
    for root, _dirs, files in os.walk(SRC):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(root, name)
            node = node_of(path)
            if node in ("lib",) or (node.startswith("ffi") and not with_ffi):
                continue
            text = open(path, encoding="utf-8").read()
            # Unit tests may reach anywhere.
            text = text.split("#[cfg(test)]")[0]
            targets = edges.setdefault(node, set())
            for parts in imports(text):
                target = resolve(parts)
                if target and target != node and (with_ffi or not target.startswith("ffi")):
                    targets.add(target)
    return edges


def cycles(edges):
    """Strongly connected components with more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
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
                out.append(sorted(component))

    sys.setrecursionlimit(10000)
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main():
    args = sys.argv[1:]
    edges = graph("--with-ffi" in args)
    if "--edges" in args:
        for node in sorted(edges):
            for target in sorted(edges[node]):
                print(f"{node} -> {target}")
        return 0
    if "--layers" in args:
        layer = lambda n: n.split("/")[0]
        pairs = sorted({(layer(a), layer(b)) for a, ts in edges.items() for b in ts if layer(a) != layer(b)})
        for a, b in pairs:
            print(f"{a} -> {b}")
        return 0
    found = cycles(edges)
    bad = [c for c in found if frozenset(c) not in ALLOWED]
    for component in found:
        mark = "allowed" if frozenset(component) in ALLOWED else "CIRCLE"
        print(f"{mark}: {' <-> '.join(component)}")
    print(f"{len(edges)} files, {sum(len(t) for t in edges.values())} imports, "
          f"{len(bad)} circle(s) beyond the allowed pairs")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
