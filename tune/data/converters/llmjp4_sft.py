"""`llmjp4_sft`: rows of llm-jp/llm-jp-4-thinking-sft-data (Harmony-style messages).

What we know of the published schema (llmjp4.md [S]; third-party loaders of the dataset): a row
has an ``ID`` and a ``messages`` list; ``content`` is a list of ``{"type": "text", "text": ...}``
blocks; assistant messages carry ``channel: analysis | final``; the system message's content
is an object with model_identity, reasoning_effort, conversation_start_date, knowledge_cutoff
and channel_config. What is assumed, not confirmed:

* the system object sits in the content list (``[{"type": "system_content", ...}]``, the shape
  openai-harmony's ``to_dict`` writes) or is the content itself; both are accepted;
* a developer message may carry ``{"type": "developer_content", "instructions": ...}``
  (openai-harmony again); its instructions become the developer text, declared tools are refused;
* several text blocks of one message are concatenated with nothing between them, as Harmony
  renders them; a plain string content is accepted too;
* reasoning_effort may be capitalised ("High", openai-harmony's enum values): it is lower-cased;
* ``messages`` stored as a JSON string is decoded.

Conversion (tune.data.converters.harmony_messages, shared with the ``preference`` converter): the
system object is not a message (the chat template writes the system block from the recipe's
pinned values); its reasoning_effort goes to the record. An ``analysis`` assistant message
followed by a ``final`` one becomes one assistant message with ``thinking``; an analysis message
with no final message after it is an empty assistant turn (bad row), and so is a second analysis
message in a row (role_order). Other channels (``commentary``: tool calls) are refused. A missing
channel counts as final.

Read from parquet, Arrow or the Hub (``datasets``), every content block carries every key any
block of the file has (``model_identity: null`` on a text block) and every message a ``channel``
(null on user messages). Null keys count as absent at every depth
(tune.data.converters.row_fields), so such a row converts exactly as the same row in JSONL.
One shape, ``harmony``.
"""

from __future__ import annotations

from collections.abc import Mapping

from tune.data.converters.row_fields import column, get_list, source_row
from tune.data.converters.base import Converted, Converter
from tune.data.converters.harmony_messages import harmony_messages
from tune.data.records import Conversation, check_conversation

SHAPE = "harmony"  # the one shape: Harmony messages (text blocks, channels, a system object)


def read(row, fields: Mapping[str, str]) -> Converted:
    """The conversation in ``row`` with analysis merged into thinking; BadRow when it cannot be."""
    row = source_row(row)
    messages, where, effort = harmony_messages(get_list(row, fields, "messages"), column(fields, "messages"))
    check_conversation(messages, where)
    return Converted(Conversation(tuple(messages), effort), SHAPE)


CONVERTER = Converter(
    name="llmjp4_sft",
    kind="sft",
    version=2,  # 2: null keys (parquet / Arrow rows) count as absent at every depth
    default_fields={"messages": "messages"},
    read=read,
    shapes=(SHAPE,),
)
