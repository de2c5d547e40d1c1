"""`preference`: rows with a prompt and two answers, one preferred.

    {"prompt": "...", "chosen": "...", "rejected": "..."}
    {"prompt": [{"role": "user", "content": "..."}, ...],
     "chosen": [{"role": "assistant", "content": "...", "thinking": "..."}],
     "rejected": [{"role": "assistant", "content": "..."}]}

A string prompt is one user message; a string answer is one assistant message. Message lists
follow the ``messages`` converter (tool calls normalised, extra keys dropped). The prompt ends
with a user message; each answer is one or more assistant messages; the answers differ.
An optional ``system`` column becomes a leading system message of the prompt.
LLM-jp's own DPO code for LLM-jp-4 (ft-llm-2026 tuning/dpo_dataset.py) reads
``messages`` / ``chosen_response`` / ``rejected_response``: a card maps those columns.
"""

from __future__ import annotations

from collections.abc import Mapping

from tune.data.converters.row_fields import column, get_field, optional_system, require_object
from tune.data.converters.message_lists import canonical_messages
from tune.data.converters.base import Converter
from tune.data.records import BadRow, Preference, check_preference, type_name


def convert(row, fields: Mapping[str, str]) -> Preference:
    """The preference pair in ``row``; BadRow when a part is missing, mistyped or misordered."""
    row = require_object(row)
    head = optional_system(row, fields)
    prompt, prompt_where = _part(row, fields, "prompt", "user")
    chosen, chosen_where = _part(row, fields, "chosen", "assistant")
    rejected, rejected_where = _part(row, fields, "rejected", "assistant")
    prompt = [m for m, _ in head] + prompt
    where = {"prompt": [w for _, w in head] + prompt_where, "chosen": chosen_where, "rejected": rejected_where}
    check_preference(prompt, chosen, rejected, where)
    return Preference(tuple(prompt), tuple(chosen), tuple(rejected))


def _part(row: dict, fields: Mapping[str, str], logical: str, role: str) -> tuple[list[dict], list[str]]:
    name = column(fields, logical)
    value = get_field(row, fields, logical)
    if isinstance(value, str):
        return [{"role": role, "content": value}], [name]
    if isinstance(value, (list, tuple)):
        return canonical_messages(list(value), name)
    raise BadRow("wrong_type", f"{name} is {type_name(value)}, expected a string or a list of messages")


CONVERTER = Converter(
    name="preference",
    kind="preference",
    version=1,
    default_fields={"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"},
    convert=convert,
    optional_fields=("system",),
)
