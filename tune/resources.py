"""Where files shipped with tune live: the recipes and the package's own data files.

From a source checkout or an editable install the recipes are the repository's ``recipes/``
folder (next to the ``tune`` package); from a wheel they are ``tune/_shipped/recipes`` (the
wheel build force-includes them there). This module is the only place that knows the difference.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

PACKAGE_DIR = Path(__file__).resolve().parent
TUNE_PREFIX = "tune:"


def shipped_recipes_dir() -> Path:
    """The folder holding the shipped recipes (it exists in a checkout and in a wheel)."""
    checkout = PACKAGE_DIR.parent / "recipes"
    if checkout.is_dir():
        return checkout
    return PACKAGE_DIR / "_shipped" / "recipes"


def shipped_cards_dir() -> Path:
    """The folder holding the dataset cards (repository ``datasets_cards/`` in a checkout,
    ``tune/_shipped/datasets_cards`` in a wheel)."""
    checkout = PACKAGE_DIR.parent / "datasets_cards"
    if checkout.is_dir():
        return checkout
    return PACKAGE_DIR / "_shipped" / "datasets_cards"


def resolve_tune_path(rel: str) -> Path:
    """The absolute path of ``rel`` inside the tune package (``samples/x.jsonl`` -> ``.../tune/samples/x.jsonl``).

    Does not check that the file exists. Refuses (ValueError) an empty, absolute or
    escaping (``..``) ``rel``: a ``tune:`` path only ever names a file shipped with tune.
    """
    pure = PurePosixPath(rel.replace("\\", "/"))
    if not rel.strip() or pure.is_absolute() or ".." in pure.parts:
        raise ValueError(f"`{TUNE_PREFIX}{rel}` must name a file inside the tune package, like `tune:samples/demo-chat.jsonl`")
    return PACKAGE_DIR.joinpath(*pure.parts)


def shipped_recipe_names() -> list[str]:
    """Names of every shipped recipe, sorted, without `.yaml` (``tiny/sft-lora``)."""
    root = shipped_recipes_dir()
    if not root.is_dir():
        return []
    return sorted(p.relative_to(root).with_suffix("").as_posix() for p in root.rglob("*.yaml"))


def shipped_recipe_path(name: str) -> Path | None:
    """The file of shipped recipe ``name`` (with or without `.yaml`), or None when there is none."""
    if not name or name.startswith(("/", "\\")):
        return None
    stem = name[: -len(".yaml")] if name.endswith(".yaml") else name
    if stem not in shipped_recipe_names():
        return None
    return shipped_recipes_dir() / f"{stem}.yaml"


def shipped_recipe_name(path: Path) -> str | None:
    """The shipped name of recipe file ``path`` (``tiny/sft-lora``), or None when it is not shipped."""
    try:
        rel = Path(path).resolve().relative_to(shipped_recipes_dir().resolve())
    except ValueError:
        return None
    return rel.with_suffix("").as_posix()
