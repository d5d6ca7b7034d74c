#!/usr/bin/env python3
"""Checks the source layout that ARCHITECTURE.md promises.

1. No import cycles between top-level modules of src/: every `crate::<module>` reference
   (in `use` lines and in paths) is an arrow from the file's top-level module to <module>.
   Unit tests may use anything: `tests.rs` files and `#[cfg(test)] mod tests` are skipped.
2. No file over 600 lines unless its header says why (a `//!` line with "longer than 600
   lines because").

Prints the module graph's order (lowest first) and exits 1 with the cycle or the file.
"""
import os
import re
import sys

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")
LIMIT = 600


def top_module(path):
    rel = os.path.relpath(path, SRC)
    first = rel.split(os.sep)[0]
    return first[:-3] if first.endswith(".rs") else first


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def without_tests(text):
    """The code of a file without its `#[cfg(test)] mod tests` (always its last item)."""
    at = re.search(r"^#\[cfg\(test\)\]\s*\nmod tests\s*\{", text, flags=re.M)
    return text[: at.start()] if at else text


def crate_refs(text):
    refs = set(re.findall(r"\bcrate::([a-z_][a-z0-9_]*)", text))
    # `use crate::{a::x, b}` groups
    for group in re.findall(r"\bcrate::\{([^}]*)\}", text, flags=re.S):
        for item in group.split(","):
            name = item.strip().split("::")[0].strip()
            if re.fullmatch(r"[a-z_][a-z0-9_]*", name):
                refs.add(name)
    return refs


def main():
    edges = {}
    oversized = []
    for root, _, files in os.walk(SRC):
        for name in files:
            if not name.endswith(".rs"):
                continue
            path = os.path.join(root, name)
            module = top_module(path)
            if module in ("main", "lib"):
                continue
            with open(path, encoding="utf-8") as f:
                text = f.read()
            lines = text.count("\n")
            if lines > LIMIT and "longer than 600 lines because" not in text.lower():
                oversized.append((os.path.relpath(path, SRC), lines))
            edges.setdefault(module, set())
            if name == "tests.rs":
                continue
            for target in crate_refs(strip_comments(without_tests(text))):
                if target != module:
                    edges[module].add(target)
    modules = set(edges) | {t for ts in edges.values() for t in ts}
    # Depth-first search for a cycle, and a topological order.
    state, order, stack = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(edges.get(m, ())):
            if state.get(t) == "open":
                cycle = stack[stack.index(t):] + [t]
                print("import cycle: " + " -> ".join(cycle), file=sys.stderr)
                sys.exit(1)
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = "done"
        order.append(m)

    for m in sorted(modules):
        if m not in state:
            visit(m)
    print("modules, lowest first: " + " ".join(order))
    for m in order:
        print(f"  {m} -> {' '.join(sorted(edges.get(m, ()))) or '(nothing)'}")
    if oversized:
        for path, lines in oversized:
            print(f"src/{path}: {lines} lines, over {LIMIT} without a reason in its header",
                  file=sys.stderr)
        sys.exit(1)


main()
