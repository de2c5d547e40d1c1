"""Shared test setup: offline Hugging Face, the repository root, and recipe-writing helpers."""

from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# A smallest valid recipe: the tiny twin on the bundled sample conversations.
MINIMAL_RECIPE = """\
model:
  name: tiny-llm-jp-4-8b
data:
  datasets:
    - path: tune:samples/demo-chat.jsonl
"""


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository checkout (holds tune/, recipes/, tests/)."""
    return REPO_ROOT


@pytest.fixture
def write_recipe(tmp_path):
    """``write_recipe(text, name="recipe.yaml")``: write dedented ``text`` under tmp_path, return its path."""

    def write(text: str, name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write


@pytest.fixture
def recipe_error():
    """``recipe_error(path, overrides=())``: load a recipe that must fail; return the rendered error text."""
    from tune.config import RecipeError, load_recipe

    def load(path, overrides=()) -> str:
        with pytest.raises(RecipeError) as info:
            load_recipe(path, overrides)
        text = str(info.value)
        assert "Traceback" not in text and "pydantic" not in text.lower() and "http" not in text
        return text

    return load
