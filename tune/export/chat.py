"""`tune chat PATH`: talk to a tuned model, one shot (``--prompt``) or in a REPL.

PATH is a finished run folder (the adapter is applied to its base, unmerged; a full run's
``final/`` model is used as is) or a folder written by `tune merge`. The conversation is
rendered with the tokenizer's chat template and ``add_generation_prompt=True``, with the
``data.conversation_start_date`` and ``data.reasoning_effort`` the run trained with (from its
recipe.yaml; a folder without one uses the schema defaults), encoded without an added bos exactly
as training encoded its samples: a special-token name typed in a message (``<|end|>``) is text,
never a control token (tune.data.chat_masks.encode_chat). Generation stops at ``<|return|>`` / ``<|call|>``, or at an
``<|end|>`` that closes a final message (tune.export.harmony), or after ``max_new_tokens``.

What is printed: the final answer only; the model's thinking (the `analysis` channel) is hidden
unless ``show_thinking``, then printed first, each line prefixed ``thinking: ``. The conversation
keeps the final answers (the template drops earlier turns' thinking anyway).

REPL: one line per user turn; ``/exit`` or end of input ends it; ``/reset`` starts a new
conversation. Runs in the recipe's ``model.dtype`` (``auto``: bf16 on a GPU, fp32 on CPU); a QLoRA
run's adapter is applied to the unquantized base.

Refuses (UserError): PATH neither a finished run nor a model folder, a base that cannot be found.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from tune.errors import UserError

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class Reply:
    """One generated reply: the parsed text and the ids that made it."""

    final: str
    thinking: str
    prompt_ids: list[int]
    generated_ids: list[int]
    stopped_at_end_token: bool
    tool_calls: tuple[str, ...] = ()


@dataclass
class ChatSession:
    """A model, its tokenizer, the template variables the run pinned, and the conversation so far."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    template_kwargs: dict
    system: str | None = None
    messages: list[dict] = field(default_factory=list)

    def conversation(self, user_text: str) -> list[dict]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + self.messages + [{"role": "user", "content": user_text}]

    def prompt_ids(self, conversation: list[dict]) -> list[int]:
        """Ids of ``conversation`` + the generation prompt, as the chat template renders them and as
        training encodes them (special-token names in the messages are text)."""
        from tune.data.chat_masks import encode_chat

        return encode_chat(self.tokenizer, conversation, self.template_kwargs, add_generation_prompt=True)

    def reply(self, user_text: str, max_new_tokens: int = 256, temperature: float = 0.0, logits_processor=None) -> Reply:
        """Generate the assistant's answer to ``user_text`` and add both turns to the conversation."""
        import torch

        from tune.export.harmony import eos_token_ids, make_stopping_criteria, parse_reply_ids

        prompt = self.prompt_ids(self.conversation(user_text))
        eos = eos_token_ids(self.tokenizer)
        sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
        device = next(self.model.parameters()).device
        with torch.no_grad():
            output = self.model.generate(
                input_ids=torch.tensor([prompt], device=device),
                attention_mask=torch.ones(1, len(prompt), dtype=torch.long, device=device),
                max_new_tokens=max_new_tokens,
                eos_token_id=eos,
                pad_token_id=self.tokenizer.pad_token_id,
                stopping_criteria=[make_stopping_criteria(self.tokenizer, len(prompt))],
                logits_processor=logits_processor,
                **sampling,
            )
        generated = output[0, len(prompt):].tolist()
        parsed = parse_reply_ids(self.tokenizer, generated)
        stopped = ends_reply(self.tokenizer, generated)
        self.messages += [{"role": "user", "content": user_text}, {"role": "assistant", "content": parsed.final}]
        return Reply(parsed.final, parsed.thinking, prompt, generated, stopped, parsed.tool_calls)

    def reset(self) -> None:
        self.messages.clear()


def ends_reply(tokenizer, generated: list[int]) -> bool:
    """True when ``generated`` ends where the stopping rule ends a reply (not merely at max_new_tokens)."""
    import torch

    from tune.export.harmony import make_stopping_criteria

    return bool(generated) and bool(make_stopping_criteria(tokenizer, 0)(torch.tensor([generated]), None)[0])


def open_session(path: str | Path, base: str | None = None, system: str | None = None) -> ChatSession:
    """A chat session with the tuned model in ``path`` (a finished run folder or a merged model)."""
    from tune.training.quiet import quiet_library_chatter

    quiet_library_chatter()
    from tune.data.render import template_kwargs
    from tune.export.harmony import has_harmony_tokens
    from tune.export.merge import load_run_tokenizer, load_tuned
    from tune.export.run_folder import locate_base, read_run, recorded_recipe
    from tune.models.loading import resolve_dtype

    path = Path(path)
    if (path / "recipe.yaml").is_file() and not (path / "config.json").is_file():
        run = read_run(path)
        base_folder = locate_base(run, base) if run.is_adapter else None
        dtype = str(resolve_dtype(run.recipe.model.dtype)).removeprefix("torch.")
        model, tokenizer, data = load_tuned(run, base_folder, dtype, merge=False), load_run_tokenizer(run), run.recipe.data
    elif (path / "config.json").is_file():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        data = recorded_recipe(path / "recipe.yaml").data if (path / "recipe.yaml").is_file() else None
        model = AutoModelForCausalLM.from_pretrained(path, dtype=resolve_dtype("auto")).eval()
        tokenizer = AutoTokenizer.from_pretrained(path)
    else:
        raise UserError(f"{path}: neither a finished run folder (recipe.yaml + final/) nor a model folder (config.json)")
    if not has_harmony_tokens(tokenizer):
        raise UserError(f"{path}: the tokenizer lacks LLM-jp-4's Harmony tokens (<|start|>, <|return|>, ...); tune chat needs them")
    if data is not None:
        kwargs = template_kwargs(data)
        kwargs.pop("chat_template", None)  # load_run_tokenizer / the export already carry the run's template
    else:
        from tune.config.schema import DataSection

        kwargs = {key: DataSection.model_fields[key].default for key in ("conversation_start_date", "reasoning_effort")}
    return ChatSession(model, tokenizer, kwargs, system)


def print_reply(reply: Reply, show_thinking: bool, printer=print) -> None:
    if show_thinking and reply.thinking:
        for line in reply.thinking.splitlines():
            printer(f"thinking: {line}")
    for call in reply.tool_calls:
        printer(f"[tool call] {call}")
    printer(reply.final)


def repl(session: ChatSession, max_new_tokens: int, temperature: float, show_thinking: bool,
         read=input, printer=print) -> int:
    """Read a line, answer it, repeat; ``/exit`` or end of input ends, ``/reset`` clears. Returns the turns answered."""
    printer("chat with the tuned model; /exit or Ctrl-D ends, /reset starts over")
    turns = 0
    while True:
        try:
            line = read("you> ")
        except EOFError:
            printer("")
            return turns
        text = line.strip()
        if text == "/exit":
            return turns
        if text == "/reset":
            session.reset()
            printer("(new conversation)")
            continue
        if not text:
            continue
        print_reply(session.reply(text, max_new_tokens, temperature), show_thinking, printer)
        turns += 1
