"""Shared test setup: offline Hugging Face, the repository root, and recipe-writing helpers."""

from __future__ import annotations

import ipaddress
import os
import socket
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


class NetworkUsed(AssertionError):
    """A test tried to reach a host other than this machine."""


@pytest.fixture(autouse=True, scope="session")
def no_network():
    """Fail any test (in this process) that connects anywhere but loopback: the suite must run offline."""
    real_connect = socket.socket.connect

    def guarded(sock, address):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            if host != "localhost" and not ipaddress.ip_address(host.split("%")[0]).is_loopback:
                raise NetworkUsed(f"a test tried to connect to {address}")
        return real_connect(sock, address)

    socket.socket.connect = guarded
    yield
    socket.socket.connect = real_connect


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
    from tune.config import RecipeError
    from tune.recipe import load_recipe

    def load(path, overrides=()) -> str:
        with pytest.raises(RecipeError) as info:
            load_recipe(path, overrides)
        text = str(info.value)
        assert "Traceback" not in text and "pydantic" not in text.lower() and "http" not in text
        return text

    return load
