"""Recipe text that still works after the file is copied somewhere else (``tune cp``).

Only one thing in a shipped recipe depends on where the file lives: a relative ``base:``
(``base: sft-lora.yaml``). ``portable_text`` rewrites that value to the base's shipped name
(``base: tiny/sft-lora``) and keeps every other character of the file, comments included.
Data paths need no rewrite: shipped recipes name their data with ``tune:`` paths.
"""

from __future__ import annotations

from pathlib import Path

from yaml.nodes import MappingNode, ScalarNode

from tune.config.bases import find_recipe
from tune.config.yaml_positions import compose_file
from tune.resources import shipped_recipe_name


def portable_text(path: Path) -> str:
    """The text of recipe ``path`` with a relative ``base:`` rewritten to the base's shipped name
    (or to its absolute path when the base is not a shipped recipe). Raises RecipeError for bad YAML."""
    text = path.read_text(encoding="utf-8")
    node = compose_file(path)
    if not isinstance(node, MappingNode):
        return text
    for key, value in node.value:
        if isinstance(key, ScalarNode) and key.value == "base" and isinstance(value, ScalarNode) and value.tag.endswith(":str"):
            target = find_recipe(value.value, path.parent)
            local = path.parent / value.value
            if target is None or not local.is_file():
                return text  # already a shipped name (or broken: validation will say so)
            name = shipped_recipe_name(target) or str(target)
            return text[: value.start_mark.index] + name + text[value.end_mark.index :]
    return text
