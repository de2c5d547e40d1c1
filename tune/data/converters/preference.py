"""`preference`: rows with a prompt and two answers, one preferred.

    {"prompt": "...", "chosen": "...", "rejected": "..."}
    {"prompt": [{"role": "user", "content": "..."}, ...],
     "chosen": [{"role": "assistant", "content": "...", "thinking": "..."}],
     "rejected": [{"role": "assistant", "content": "..."}]}
    {"prompt": [{"role": "system", "content": [{"type": "system_content", "reasoning_effort": "high", ...}]},
                {"role": "user", "content": [{"type": "text", "text": "..."}]}],
     "chosen": [{"role": "assistant", "channel": "analysis", "content": [{"type": "text", "text": "..."}]},
                {"role": "assistant", "channel": "final", "content": [{"type": "text", "text": "..."}]}],
     "rejected": [...]}

Each part (prompt, chosen, rejected) is a string, a message list, or a Harmony message list (a
message carries a ``channel``, or content made of objects: text blocks, a system object).
A string prompt is one user message; a string answer is one assistant message. Message lists
follow the ``messages`` converter (tool calls normalised, extra keys dropped); Harmony lists follow
tune.data.converters.harmony_messages, as ``llmjp4_sft`` reads them: text blocks joined, an
analysis message and the final one after it merged into one assistant message with ``thinking``
(kept in the record; the chat template decides where it is rendered), a prompt's leading system
object not a message, its reasoning effort kept on the record (``Preference.reasoning_effort``;
which effort a pair is rendered with is tune.data.preference_samples' rule). An answer may not
hold a system object. Null keys count as absent at every depth (row_fields), so rows read from
parquet, Arrow or the Hub convert as the same rows from JSONL.

The row's shape, detected per row: ``harmony`` when a part is a Harmony list, else ``messages``
when an answer is a message list, else ``strings`` (both answers strings; the usual one). A row
with a part in none of the three forms is a bad row (wrong_type).

The prompt ends with a user message; each answer is one or more assistant messages; the answers
differ. An optional ``system`` column becomes a leading system message of the prompt.
LLM-jp's own DPO code for LLM-jp-4 (ft-llm-2026 tuning/dpo_dataset.py) reads
``messages`` / ``chosen_response`` / ``rejected_response``: a card maps those columns.
"""

from __future__ import annotations

from collections.abc import Mapping

from tune.data.converters.row_fields import column, get_field, optional_system, source_row
from tune.data.converters.message_lists import canonical_messages
from tune.data.converters.harmony_messages import harmony_messages, is_harmony
from tune.data.converters.base import Converted, Converter
from tune.data.records import BadRow, Preference, check_preference, type_name

SHAPES = ("strings", "messages", "harmony")


def read(row, fields: Mapping[str, str]) -> Converted:
    """The preference pair in ``row`` and its shape (module docstring); BadRow when a part is
    missing, mistyped or misordered."""
    row = source_row(row)
    head = optional_system(row, fields)
    prompt, prompt_where, effort, prompt_form = _part(row, fields, "prompt", "user")
    chosen, chosen_where, _, chosen_form = _part(row, fields, "chosen", "assistant")
    rejected, rejected_where, _, rejected_form = _part(row, fields, "rejected", "assistant")
    prompt = [m for m, _ in head] + prompt
    where = {"prompt": [w for _, w in head] + prompt_where, "chosen": chosen_where, "rejected": rejected_where}
    check_preference(prompt, chosen, rejected, where)
    forms = {prompt_form, chosen_form, rejected_form}
    shape = "harmony" if "harmony" in forms else "messages" if "messages" in {chosen_form, rejected_form} else "strings"
    return Converted(Preference(tuple(prompt), tuple(chosen), tuple(rejected), effort), shape)


def _part(row: dict, fields: Mapping[str, str], logical: str, role: str) -> tuple[list[dict], list[str], str | None, str]:
    """The canonical messages of one part, their labels, the reasoning effort of a Harmony system
    object in it, and the part's form: ``string``, ``messages`` or ``harmony``."""
    name = column(fields, logical)
    value = get_field(row, fields, logical)
    if isinstance(value, str):
        return [{"role": role, "content": value}], [name], None, "string"
    if isinstance(value, (list, tuple)):
        if is_harmony(list(value)):
            return (*harmony_messages(list(value), name, answer=role == "assistant"), "harmony")
        return (*canonical_messages(list(value), name), None, "messages")
    raise BadRow("wrong_type", f"{name} is {type_name(value)}, expected a string or a list of messages")


CONVERTER = Converter(
    name="preference",
    kind="preference",
    version=2,  # 2: Harmony answers read (they were bad rows); the prompt's reasoning effort kept
    default_fields={"prompt": "prompt", "chosen": "chosen", "rejected": "rejected"},
    read=read,
    shapes=SHAPES,
    optional_fields=("system",),
)
