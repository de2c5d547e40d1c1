"""Records passed between rooms say what they hold: no dataclass field typed `object`, `Any` or `callable`."""

from __future__ import annotations

import ast
from pathlib import Path

TUNE = Path(__file__).resolve().parents[2] / "tune"
VAGUE = {"object", "Any", "callable"}
# Fields that hold a typing annotation itself (``int | None``, ``Literal[...]``): Python has no type for
# type expressions before PEP 747's TypeForm, so ``Any`` is the honest one there.
TYPE_EXPRESSIONS = {("Located", "annotation"), ("Located", "union_annotation")}


def dataclass_fields(path: Path) -> list[tuple[str, int, str]]:
    """(class, line, annotation text) of every annotated field of every @dataclass in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ClassDef):
            continue
        decorators = [ast.unparse(d) for d in node.decorator_list]
        if not any(d.split("(")[0].endswith("dataclass") for d in decorators):
            continue
        for statement in node.body:
            if isinstance(statement, ast.AnnAssign) and (node.name, ast.unparse(statement.target)) not in TYPE_EXPRESSIONS:
                found.append((node.name, statement.lineno, ast.unparse(statement.annotation)))
    return found


def vague(annotation: str) -> bool:
    return bool(VAGUE & {token.strip("[](), |'\"") for token in annotation.replace("|", " ").replace(",", " ").split()})


def test_no_dataclass_field_is_typed_vaguely():
    wrong = [f"{path.relative_to(TUNE.parent)}:{line}: {cls}: {annotation}"
             for path in sorted(TUNE.rglob("*.py")) for cls, line, annotation in dataclass_fields(path) if vague(annotation)]
    assert wrong == []


def test_the_check_would_catch_a_vague_field(tmp_path):
    sample = tmp_path / "x.py"
    sample.write_text("from dataclasses import dataclass\n@dataclass\nclass A:\n    data: object\n    rows: callable\n    ok: int\n")
    assert [annotation for _, _, annotation in dataclass_fields(sample) if vague(annotation)] == ["object", "callable"]
