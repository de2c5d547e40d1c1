"""Read conversation JSONL files (`format: messages`) and refuse malformed rows by location.

A row is one JSON object per line with a `messages` list of `{role, content}` objects; roles are
system, developer, user, assistant and tool; an assistant message may carry `thinking` (string)
and `tool_calls`. Nothing is dropped silently: a malformed row is a UserError naming the file,
the line and what is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path

from tune.errors import UserError

ROLES = ("system", "developer", "user", "assistant", "tool")


def read_conversations(path: Path) -> list[list[dict]]:
    """Every conversation in ``path``, in file order; blank lines are skipped.

    Raises UserError naming ``path:line`` for invalid JSON or a row that breaks the rules in
    ``conversation_problem``.
    """
    conversations = []
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise UserError(f"{path}:{line_number}: not valid JSON ({err.msg} at column {err.colno})") from None
            problem = conversation_problem(row)
            if problem:
                raise UserError(f"{path}:{line_number}: {problem}")
            conversations.append(row["messages"])
    if not conversations:
        raise UserError(f"{path}: holds no conversations; expected JSONL rows with a `messages` list")
    return conversations


def conversation_problem(row) -> str | None:
    """What is wrong with a `messages` row, or None when it can be trained on."""
    if not isinstance(row, dict) or not isinstance(row.get("messages"), list):
        return "expected an object with a `messages` list"
    messages = row["messages"]
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            return f"{where} is not an object"
        role = message.get("role")
        if role not in ROLES:
            return f"{where}.role is {role!r}; expected one of {', '.join(ROLES)}"
        if not isinstance(message.get("content", ""), str):
            return f"{where}.content is not a string"
        if role in ("system", "developer") and index != 0:
            return f"{where}: a {role} message may only come first"
        if "thinking" in message and role != "assistant":
            return f"{where}: `thinking` is only allowed on assistant messages"
    chat = [m for m in messages if m["role"] not in ("system", "developer")]
    if not any(m["role"] == "assistant" for m in chat):
        return "no assistant message: nothing to train on"
    if chat[0]["role"] != "user":
        return "the first message after system/developer must be from the user"
    for message in chat:
        if message["role"] == "assistant" and not message.get("content") and not message.get("tool_calls"):
            return "an assistant message has empty content"
    return None
