"""The tiny twins' tokenizer, trained by the project itself, and the project's chat template.

The tiny twins (``tune.models.tiny_twins``) need a tokenizer that behaves like LLM-jp-4's in
every way a training run notices, while being small enough for a 4096-row embedding:

* the same special tokens at the same ids: 0 ``<|unk|>``, 1 ``<|startoftext|>`` (bos),
  2 ``<|return|>`` (eos), 3 ``<|mask|>``, 4 ``<|endoftext|>`` (pad), 5 ``<|cls|>``, 6 ``<|eod|>``,
  7 ``<|sep|>``, 8 ``<|constrain|>``, 9 ``<|channel|>``, 10 ``<|start|>``, 11 ``<|end|>``,
  12 ``<|message|>``, 13 ``<|call|>``; then the 256 byte pieces ``<0x00>``..``<0xFF>`` (ids
  14-269); then learned pieces, at most ``TINY_VOCAB_SIZE`` (4096) entries in all;
* the same kind of model: a SentencePiece Unigram with byte fallback (any text encodes, no
  unknown ids), a "▁" dummy prefix, no normalization, digits split, whitespace-only pieces;
* bos prepended when encoding with ``add_special_tokens=True``, no eos;
* the project's Harmony chat template (``templates/harmony.jinja``), which renders like
  LLM-jp-4's official template.

It is trained with SentencePiece's trainer (one thread, fixed seed: deterministic) on
``assets/tiny_corpus.txt`` (the project's own mixed Japanese / English / code text), then
converted to a fast tokenizer with the same exact conversion used for the real model
(:mod:`tune.models.tokenizer_sentencepiece`). Training takes well under a second; the result
is kept in memory for the life of the process and never written inside the repository.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

from transformers import PreTrainedTokenizerFast

from tune.models.presets import BOS_ID, EOS_ID, PAD_ID, TINY_VOCAB_SIZE

_HERE = Path(__file__).resolve().parent
CORPUS_PATH = _HERE / "assets" / "tiny_corpus.txt"
HARMONY_TEMPLATE_PATH = _HERE / "templates" / "harmony.jinja"

# LLM-jp-4's special tokens 0-13, in id order (llm-jp-tokenizer v4.0, shared/docs/llmjp4.md).
SPECIAL_TOKENS = (
    "<|unk|>",
    "<|startoftext|>",
    "<|return|>",
    "<|mask|>",
    "<|endoftext|>",
    "<|cls|>",
    "<|eod|>",
    "<|sep|>",
    "<|constrain|>",
    "<|channel|>",
    "<|start|>",
    "<|end|>",
    "<|message|>",
    "<|call|>",
)
FIRST_BYTE_ID = len(SPECIAL_TOKENS)  # <0x00>; <0xFF> is FIRST_BYTE_ID + 255
SPECIAL_TOKEN_ROLES = {
    "unk_token": "<|unk|>",
    "bos_token": SPECIAL_TOKENS[BOS_ID],
    "eos_token": SPECIAL_TOKENS[EOS_ID],
    "pad_token": SPECIAL_TOKENS[PAD_ID],
    "mask_token": "<|mask|>",
    "cls_token": "<|cls|>",
    "sep_token": "<|sep|>",
}
_SEED = 1234


def load_template_text() -> str:
    """The project's Harmony chat template (``tune/models/templates/harmony.jinja``) as text."""
    return HARMONY_TEMPLATE_PATH.read_text(encoding="utf-8")


def _train_sentencepiece() -> bytes:
    """Train the tiny SentencePiece Unigram model on the bundled corpus; the serialized proto."""
    import io

    import sentencepiece as spm

    lines = [line for line in CORPUS_PATH.read_text(encoding="utf-8").splitlines() if line.strip()]
    spm.set_random_generator_seed(_SEED)
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_writer=model,
        model_type="unigram",
        vocab_size=TINY_VOCAB_SIZE,
        hard_vocab_limit=False,  # a small corpus may yield fewer pieces: <= 4096 is what matters
        character_coverage=1.0,
        byte_fallback=True,
        split_digits=True,
        split_by_whitespace=True,
        allow_whitespace_only_pieces=True,
        max_sentencepiece_length=16,
        # LLM-jp-4's normalizer spec: identity, dummy prefix, spaces kept as they are.
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        unk_id=0,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        pad_id=-1,
        unk_piece=SPECIAL_TOKENS[0],
        bos_piece=SPECIAL_TOKENS[BOS_ID],
        eos_piece=SPECIAL_TOKENS[EOS_ID],
        user_defined_symbols=list(SPECIAL_TOKENS[3:]),
        num_threads=1,
        shuffle_input_sentence=False,
        input_sentence_size=0,
        minloglevel=2,
    )
    return model.getvalue()


def tiny_sentencepiece_model() -> bytes:
    """The serialized SentencePiece model the tiny tokenizer is converted from (trained afresh,
    deterministic: the same bytes every call). A twin folder carries it as ``tokenizer.model``,
    like a real checkpoint whose tokenizer comes from a SentencePiece model, so that exports
    can be checked to pass it on (GGUF converters read ``tokenizer.model``)."""
    return _train_sentencepiece()


@functools.lru_cache(maxsize=1)
def _tiny_tokenizer_json() -> str:
    """Train and convert once per process; the serialized ``tokenizers`` JSON."""
    from tune.models.tokenizer_sentencepiece import parse_sentencepiece_model, sentencepiece_to_tokenizers

    proto = parse_sentencepiece_model(_train_sentencepiece(), "tiny tokenizer")
    tokenizer = sentencepiece_to_tokenizers(proto, add_bos_token=True, add_eos_token=False, source="tiny tokenizer")
    size = tokenizer.get_vocab_size(with_added_tokens=True)
    if size > TINY_VOCAB_SIZE:  # cannot happen with vocab_size=TINY_VOCAB_SIZE; guards edits
        raise ValueError(f"tiny tokenizer has {size} entries, more than the tiny model's {TINY_VOCAB_SIZE}")
    return tokenizer.to_str()


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A fresh tiny tokenizer (see the module docstring for what it promises).

    Every call returns a new object built from the same serialized tokenizer, so callers may
    change theirs (e.g. padding side) without affecting others. The first call in a process
    trains it (well under a second); later calls only rebuild the Python object.
    """
    from tokenizers import Tokenizer

    from tune.models.tokenizer_sentencepiece import wrap_fast_tokenizer

    return wrap_fast_tokenizer(
        Tokenizer.from_str(_tiny_tokenizer_json()),
        SPECIAL_TOKEN_ROLES,
        add_bos_token=True,
        add_eos_token=False,
        chat_template=load_template_text(),
    )


def save_tiny_tokenizer(directory: str | Path) -> None:
    """Write the tiny tokenizer to ``directory`` (created if needed) as a standard HF folder.

    Writes ``tokenizer.json`` (its post-processor prepends bos), ``tokenizer_config.json``,
    ``special_tokens_map.json`` and ``chat_template.jinja``, so that
    ``transformers.AutoTokenizer.from_pretrained(directory)`` loads it with no tune import
    and no remote code, chat template attached, bos prepended. Existing files of those names
    are replaced; the output is byte-identical from one call to the next.
    """
    directory = Path(directory)
    tokenizer = build_tiny_tokenizer()
    tokenizer.save_pretrained(directory)

    # transformers 5 leaves add_bos_token/add_eos_token out of the config: the post-processor in
    # tokenizer.json is what adds bos (and it ignores these keys when tokenizer.json exists).
    # Written anyway, as in LLM-jp-4's own config, for other readers (and people) of the folder.
    config_path = directory / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config.update(add_bos_token=True, add_eos_token=False)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")

    # transformers 5 no longer writes special_tokens_map.json; older readers still look for it.
    token_map = {
        role: {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
        for role, content in sorted(SPECIAL_TOKEN_ROLES.items())
    }
    (directory / "special_tokens_map.json").write_text(json.dumps(token_map, indent=2) + "\n", encoding="utf-8")

    template_path = directory / "chat_template.jinja"
    if not template_path.is_file():  # transformers 5 writes it; make sure for other versions
        template_path.write_text(load_template_text(), encoding="utf-8")
