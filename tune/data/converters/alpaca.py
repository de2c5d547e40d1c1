"""`alpaca`: single-turn instruction rows.

    {"instruction": "...", "input": "...", "output": "..."}

The user turn is the instruction alone when ``input`` is absent, null or blank, and
``instruction + "\\n\\n" + input`` otherwise; the assistant turn is ``output``. An optional
``system`` column (mapped by a card) becomes a leading system message.

Why "\\n\\n": LLM-jp's own tuning code never joins the two fields. llm-jp-sft (train.py,
dataset.py) trains on text that was already rendered, and instruct3 / ft-llm-2026 read
``messages`` whose user content is one string. Their prompt template separates every section
with a blank line (``{system}\\n\\n### 指示:\\n{user}\\n\\n### 応答:\\n``), so we join instruction
and input the same way. Datasets with other column names map them: dolly-ja
(instruction/context/response), AnswerCarefully and ichikara-instruction (text/output).
"""

from __future__ import annotations

from collections.abc import Mapping

from tune.data.converters.row_fields import column, get_text, optional_system, source_row
from tune.data.converters.base import Converted, Converter
from tune.data.records import BadRow, Conversation, check_conversation

SEPARATOR = "\n\n"
SHAPE = "alpaca"  # the one shape: instruction / input / output columns


def read(row, fields: Mapping[str, str]) -> Converted:
    """A two- (or three-, with system) message conversation; BadRow for a missing or empty part."""
    row = source_row(row)
    instruction = get_text(row, fields, "instruction")
    extra = get_text(row, fields, "input", required=False)
    output = get_text(row, fields, "output")
    if not instruction.strip():
        raise BadRow("empty_user", f"`{column(fields, 'instruction')}` is blank")
    if not output.strip():
        raise BadRow("empty_assistant", f"`{column(fields, 'output')}` is blank")
    user = instruction + SEPARATOR + extra if extra and extra.strip() else instruction
    head = optional_system(row, fields)
    messages = [m for m, _ in head] + [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
    where = [w for _, w in head] + [column(fields, "instruction"), column(fields, "output")]
    check_conversation(messages, where)
    return Converted(Conversation(tuple(messages)), SHAPE)


CONVERTER = Converter(
    name="alpaca",
    kind="sft",
    version=1,
    default_fields={"instruction": "instruction", "input": "input", "output": "output"},
    read=read,
    shapes=(SHAPE,),
    optional_fields=("system",),
)
