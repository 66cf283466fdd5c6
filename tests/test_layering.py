"""The import layering (DESIGN.md, docs/architecture.md): every `cifarb` import, read from the source with
`ast` (top-level and inside functions alike), points down the layer order or along a stated sideways pair."""

from __future__ import annotations

import ast
from pathlib import Path

import cifarb

SRC = Path(cifarb.__file__).parent

# Bottom to top; a room is a sub-package (`data`) or a top-level module (`_atomic`); "" is the package
# root itself (`from cifarb import __version__`). docs/architecture.md "Layers" explains each line.
LAYERS: tuple[frozenset[str], ...] = tuple(frozenset(rooms) for rooms in (
    {"", "errors"},
    {"_atomic", "_device", "_hashing", "_progress", "_threads", "_extras", "citations", "seeds"},
    {"runs"},
    {"data"},
    {"metrics"},
    {"flows", "models"},
    {"augment"},
    {"eval"},
    {"train"},
    {"report"},
    {"reference"},
    {"study"},
    {"api", "demo"},
    {"commands", "cli", "__main__"},
))
# Imports between rooms of one line that are allowed (the front end is one piece: `completion` builds
# cli's parser, cli loads the commands by name).
SIDEWAYS: frozenset[tuple[str, str]] = frozenset({
    ("commands", "cli"), ("cli", "commands"), ("__main__", "cli"),
})


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imported(tree: ast.Module, module: str, is_package: bool, top: str, src: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) for every import of the package `top` in one module."""
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.extend((node.lineno, a.name) for a in node.names if a.name.split(".")[0] == top)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != top:
                continue
            # `from pkg import name` imports the sub-module `pkg.name` where one exists
            folder = src.parent.joinpath(*target.split("."))
            for a in node.names:
                sub = (folder / a.name).is_dir() or (folder / f"{a.name}.py").exists()
                out.append((node.lineno, f"{target}.{a.name}" if sub else target))
    return out


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def upward_imports(src: Path, layers=LAYERS, sideways=SIDEWAYS) -> list[str]:
    """Every import in the package at `src` that points up the layer order (or sideways, unlisted), one
    line each; a module in no layer is reported too, so a new room has to be placed."""
    top = src.name
    level = {room: i for i, rooms in enumerate(layers) for room in rooms}
    problems: list[str] = []
    for path in sorted(src.rglob("*.py")):
        module = _module_name(path, src)
        room = _room(module)
        where = path.relative_to(src.parent)
        if room not in level:
            problems.append(f"{where}: room {room!r} is in no layer")
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, target in dict.fromkeys(_imported(tree, module, path.name == "__init__.py", top, src)):
            other = _room(target)
            if other == room:
                continue
            if other not in level:
                problems.append(f"{where}:{line}: imports {target}, whose room {other!r} is in no layer")
            elif level[other] > level[room] or (level[other] == level[room] and (room, other) not in sideways):
                problems.append(f"{where}:{line}: {room or top} imports {target} ({other or top}), "
                                "which is not below it")
    return problems


def test_no_module_imports_upward():
    assert upward_imports(SRC) == []


def test_every_room_of_the_tree_is_placed():
    rooms = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    rooms |= {p.stem for p in SRC.glob("*.py") if p.stem != "__init__"}
    placed = set().union(*LAYERS)
    assert rooms <= placed
    assert placed - {""} <= rooms  # no stale names


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "fake"


FAKE_LAYERS = (frozenset({"", "errors"}), frozenset({"data", "runs"}), frozenset({"commands", "cli"}))


def test_the_checker_passes_downward_and_stated_sideways_imports(tmp_path):
    src = _write(tmp_path, {
        "fake/__init__.py": "",
        "fake/errors.py": "",
        "fake/data/__init__.py": "from fake.errors import X\nfrom . import reader\n",
        "fake/data/reader.py": "from ..errors import X\nimport fake.runs.lock\n",
        "fake/runs/__init__.py": "from fake import errors, __version__\n",
        "fake/runs/lock.py": "",
        "fake/commands/__init__.py": "",
        "fake/commands/go.py": "def run():\n    from fake.cli import main\n    from fake.data import reader\n",
        "fake/cli.py": "import fake.commands.go\n",
    })
    sideways = frozenset({("data", "runs"), ("commands", "cli"), ("cli", "commands")})
    assert upward_imports(src, FAKE_LAYERS, sideways) == []


def test_the_checker_finds_a_constructed_upward_import(tmp_path):
    src = _write(tmp_path, {
        "fake/__init__.py": "",
        "fake/errors.py": "def f():\n    from fake.commands import go  # lazy, still upward\n",
        "fake/data/__init__.py": "",
        "fake/data/reader.py": "from ..runs import lock\n",
        "fake/runs/__init__.py": "",
        "fake/runs/lock.py": "",
        "fake/commands/__init__.py": "",
        "fake/commands/go.py": "",
        "fake/cli.py": "",
        "fake/extra/__init__.py": "",
    })
    problems = upward_imports(src, FAKE_LAYERS, frozenset())
    assert problems == [
        "fake/data/reader.py:1: data imports fake.runs.lock (runs), which is not below it",
        "fake/errors.py:2: errors imports fake.commands.go (commands), which is not below it",
        "fake/extra/__init__.py: room 'extra' is in no layer",
    ]
