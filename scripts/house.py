"""The house's shape from its imports, at the level a reader meets it: each folder of `higgs_train/` (and
`data_prep/`) is one room, each loose module of `higgs_train/` a room of its own. Prints the floors (a room stands
above every room it imports), the imports that run back up (rooms that import each other, directly or round a
loop), and the loose modules. Run: `.venv/bin/python scripts/house.py`; tests/test_house.py holds the rules.
"""

from __future__ import annotations

import ast
import sys
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOPS = ("higgs_train", "data_prep")


def room_of(module: str) -> str | None:
    """`higgs_train.data.table` -> `higgs_train/data`; `higgs_train.config` -> `higgs_train/config.py`."""
    parts = module.split(".")
    if parts[0] not in TOPS:
        return None
    if parts[0] == "data_prep":
        return "data_prep"
    if len(parts) == 1:
        return "higgs_train/__init__.py"
    folder = ROOT / "higgs_train" / parts[1]
    return f"higgs_train/{parts[1]}" if folder.is_dir() else f"higgs_train/{parts[1]}.py"


def imports_of(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports count too), and each name taken from one."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.update([node.module] + [f"{node.module}.{alias.name}" for alias in node.names])
    return found


def arrows() -> dict[str, set[str]]:
    """room -> the rooms its files import (itself left out)."""
    graph: dict[str, set[str]] = {}
    for top in TOPS:
        for path in (ROOT / top).rglob("*.py"):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            room = room_of(module)
            targets = {room_of(m) for m in imports_of(path)} - {None, room}
            # `from higgs_train import x` names a room through the package's face, not the face itself
            targets.discard("higgs_train/__init__.py") if room != "higgs_train/__init__.py" else None
            graph.setdefault(room, set()).update(targets)
    return graph


def loops(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Arrows that run back up: A -> B where B also reaches A."""
    @cache
    def reach(start: str) -> frozenset[str]:
        seen, stack = set(), [start]
        while stack:
            for nxt in graph.get(stack.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append(nxt)
        return frozenset(seen)

    return sorted((a, b) for a, targets in graph.items() for b in targets if a in reach(b))


def floors(graph: dict[str, set[str]]) -> dict[str, int]:
    """Floor 1 imports no room; every other room stands one above the highest it imports (loops broken)."""
    floor: dict[str, int] = {}

    def place(room: str, visiting: frozenset[str]) -> int:
        if room not in floor:
            below = [place(t, visiting | {room}) for t in graph.get(room, ()) if t not in visiting | {room}]
            floor[room] = 1 + max(below, default=0)
        return floor[room]

    for room in graph:
        place(room, frozenset())
    return floor


def loose_modules() -> list[str]:
    return sorted(f"higgs_train/{p.name}" for p in (ROOT / "higgs_train").glob("*.py"))


def main() -> None:
    graph = arrows()
    placed = floors(graph)
    print(f"floors: {max(placed.values())}")
    for room, floor in sorted(placed.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"  {floor:2d}  {room}  -> {', '.join(sorted(graph.get(room, ()))) or '-'}")
    back = loops(graph)
    print(f"imports that run back up: {len(back)}" + "".join(f"\n  {a} -> {b}" for a, b in back))
    loose = loose_modules()
    print(f"loose modules in higgs_train/: {len(loose)} ({', '.join(loose)})")
    sys.exit(0)


if __name__ == "__main__":
    main()
