"""Fast (``tokenizers``) tokenizers from SentencePiece Unigram models, id for id.

:func:`build_fast_tokenizer_from_assets` builds LLM-jp-4's tokenizer as a plain
``PreTrainedTokenizerFast`` (no remote code) from its files; :func:`sentencepiece_to_tokenizers`
converts a SentencePiece model so that it encodes exactly as ``SentencePieceProcessor.encode``
(the tiny twins' tokenizer uses it too). Unknown, control and user-defined pieces become special
added tokens, matched whole in text; decoding a rendered chat gives it back. Read as text instead
(``split_special_tokens``, how tune encodes message content), a special-token name is ordinary
pieces, exactly as SentencePiece reads it: the model never matches those pieces against text.
SentencePiece's user-defined symbol names in plain text (``<pad>``) stay plain text by default, as
in the published tokenizer.json; ``sentencepiece_user_symbols=True`` maps them to their ids, as
SentencePiece does.

Refuses (ValueError) what has not been verified exact: anything but a Unigram model with an
identity normalizer (no precompiled charsmap, ``remove_extra_whitespaces`` off, whitespace as
prefix), rather than building a tokenizer that silently differs.

Why, and how the conversion stays exact: docs/tokenizer.md
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

SPIECE_UNDERLINE = "▁"
# Score of pieces that must never be matched against text (bytes, unused and special pieces).
# Any real segmentation of their few ASCII characters scores far higher; the value only has to
# stay finite and far below the lowest real score (LLM-jp-4: -20.4).
_NEVER_MATCH_SCORE = -1.0e4
# Names of the special-token roles transformers knows, as tokenizer_config.json spells them.
SPECIAL_TOKEN_ROLES = ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token")

# sentencepiece_model_pb2.ModelProto.SentencePiece.Type values.
_NORMAL, _UNKNOWN, _CONTROL, _USER_DEFINED, _UNUSED, _BYTE = 1, 2, 3, 4, 5, 6
_UNIGRAM = 1


def parse_sentencepiece_model(data: bytes, source: str = "<bytes>"):
    """Parse a serialized SentencePiece ``ModelProto``; ValueError naming ``source`` if garbled."""
    from google.protobuf.message import DecodeError
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    try:
        proto.ParseFromString(data)
    except DecodeError as error:
        raise ValueError(f"{source}: not a SentencePiece model ({error})") from None
    if len(proto.pieces) == 0:
        raise ValueError(f"{source}: not a SentencePiece model (it has no pieces)")
    return proto


def _check_supported(proto, source: str) -> None:
    """Refuse SentencePiece features this conversion does not reproduce exactly."""
    trainer, norm = proto.trainer_spec, proto.normalizer_spec
    problems = []
    if trainer.model_type != _UNIGRAM:
        problems.append(f"model_type is {trainer.model_type} (only Unigram = 1 is supported)")
    if norm.precompiled_charsmap:
        problems.append(f"normalizer '{norm.name}' rewrites characters (only 'identity' is supported)")
    if norm.remove_extra_whitespaces:
        problems.append("remove_extra_whitespaces is on")
    if trainer.treat_whitespace_as_suffix:
        problems.append("treat_whitespace_as_suffix is on")
    if proto.HasField("denormalizer_spec") and proto.denormalizer_spec.precompiled_charsmap:
        problems.append("it has a denormalizer")
    if problems:
        raise ValueError(f"{source}: cannot convert this SentencePiece model exactly: " + "; ".join(problems))


def sentencepiece_to_tokenizers(
    proto,
    *,
    token_names: Mapping[int, str] | None = None,
    add_bos_token: bool = True,
    add_eos_token: bool = False,
    sentencepiece_user_symbols: bool = False,
    source: str = "<model>",
) -> Tokenizer:
    """A ``tokenizers.Tokenizer`` that encodes exactly as SentencePiece does with ``proto``.

    ``proto`` is a parsed ``ModelProto`` (see :func:`parse_sentencepiece_model`).
    ``token_names`` renames pieces by id (LLM-jp-4: ``<s>`` -> ``<|startoftext|>``, ...); the
    unknown, control and user-defined pieces become special added tokens under their (new)
    names. The post-processor prepends the bos piece (SentencePiece's ``bos_id``) when
    ``add_bos_token`` and appends the eos piece when ``add_eos_token``.

    Raises ValueError (naming ``source``) for models it cannot convert exactly, for a
    ``token_names`` id outside the model, or for a name given to two ids.
    """
    _check_supported(proto, source)
    names = dict(token_names or {})
    size = len(proto.pieces)
    outside = sorted(i for i in names if not 0 <= i < size)
    if outside:
        raise ValueError(f"{source}: token ids {outside[:5]} are outside the model's {size} pieces")

    vocab: list[tuple[str, float]] = []
    special_ids: list[int] = []
    renamed_user_symbols: dict[str, str] = {}
    for i, piece in enumerate(proto.pieces):
        name = names.get(i, piece.piece)
        if piece.type == _NORMAL:
            vocab.append((name, piece.score))
        elif piece.type in (_BYTE, _UNUSED):
            vocab.append((name, _NEVER_MATCH_SCORE))
        else:  # unknown, control, user-defined: special tokens, split off before the model
            # Text never reaches the model as one of these: a name the added vocabulary does not
            # match (``split_special_tokens``) is ordinary text, as in SentencePiece. Only a
            # rewritten user symbol (``sentencepiece_user_symbols``) is meant to reach it whole.
            rewritten = sentencepiece_user_symbols and piece.type == _USER_DEFINED and name != piece.piece
            vocab.append((name, 0.0 if rewritten else _NEVER_MATCH_SCORE))
            special_ids.append(i)
            if piece.type == _USER_DEFINED and name != piece.piece:
                renamed_user_symbols[piece.piece] = name
        if i in names and piece.type not in (_UNKNOWN, _CONTROL, _USER_DEFINED):
            raise ValueError(f"{source}: id {i} ({piece.piece!r}) is not a special piece and cannot be renamed")
    seen: dict[str, int] = {}
    for i, (name, _) in enumerate(vocab):
        if name in seen:
            raise ValueError(f"{source}: token {name!r} would have two ids ({seen[name]} and {i})")
        seen[name] = i

    unk_id = proto.trainer_spec.unk_id
    tokenizer = Tokenizer(models.Unigram(vocab, unk_id, byte_fallback=proto.trainer_spec.byte_fallback))

    norm = proto.normalizer_spec
    steps = []
    if sentencepiece_user_symbols and renamed_user_symbols:
        # Longest names first, as SentencePiece's longest-prefix match would pick them.
        for old in sorted(renamed_user_symbols, key=lambda s: (-len(s), s)):
            steps.append(normalizers.Replace(old, renamed_user_symbols[old]))
    if norm.escape_whitespaces:
        steps.append(normalizers.Replace(" ", SPIECE_UNDERLINE))
    if norm.add_dummy_prefix:
        steps.append(normalizers.Prepend(SPIECE_UNDERLINE))
    tokenizer.normalizer = normalizers.Sequence(steps) if steps else None
    if sentencepiece_user_symbols and renamed_user_symbols:
        # Each rewritten symbol is one pre-token: SentencePiece's user-symbol bonus always picks it.
        new_names = sorted(set(renamed_user_symbols.values()), key=len, reverse=True)
        alternatives = "|".join(_regex_escape(name) for name in new_names)
        tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(alternatives), behavior="isolated")
    else:
        tokenizer.pre_tokenizer = None

    steps = [decoders.Replace(SPIECE_UNDERLINE, " "), decoders.ByteFallback(), decoders.Fuse()]
    if norm.add_dummy_prefix:
        # Drop the dummy prefix's space: at the start, and right after each special token (the
        # text after a special token got its own "▁"), so decode(encode(chat)) == chat.
        steps.append(decoders.Strip(" ", 1, 0))
        if special_ids:
            after_special = "|".join(_regex_escape(vocab[i][0]) for i in special_ids)
            steps.append(decoders.Replace(Regex(f"(?<={after_special}) "), ""))
    tokenizer.decoder = decoders.Sequence(steps)

    tokenizer.add_special_tokens(
        [AddedToken(vocab[i][0], special=True, normalized=False, lstrip=False, rstrip=False) for i in special_ids]
    )
    bos_id, eos_id = proto.trainer_spec.bos_id, proto.trainer_spec.eos_id
    for wanted, role, piece_id in ((add_bos_token, "bos", bos_id), (add_eos_token, "eos", eos_id)):
        if wanted and not 0 <= piece_id < size:
            raise ValueError(f"{source}: add_{role}_token is set but the model has no {role} piece ({piece_id=})")
    tokenizer.post_processor = _bos_eos_processor(
        vocab[bos_id][0] if add_bos_token else None, bos_id, vocab[eos_id][0] if add_eos_token else None, eos_id
    )
    return tokenizer


def _regex_escape(text: str) -> str:
    """Escape ``text`` for an Oniguruma regex (tokenizers' ``Regex``)."""
    return "".join("\\" + c if c in r"\^$.|?*+()[]{}-" else c for c in text)


def _bos_eos_processor(bos: str | None, bos_id: int, eos: str | None, eos_id: int):
    """TemplateProcessing adding ``bos`` before and ``eos`` after each sequence (None: leave out)."""
    single = ([f"{bos}:0"] if bos else []) + ["$A:0"] + ([f"{eos}:0"] if eos else [])
    pair = single + ([f"{bos}:1"] if bos else []) + ["$B:1"] + ([f"{eos}:1"] if eos else [])
    special = ([(bos, bos_id)] if bos else []) + ([(eos, eos_id)] if eos else [])
    return processors.TemplateProcessing(single=single, pair=pair, special_tokens=special)


def wrap_fast_tokenizer(
    tokenizer: Tokenizer,
    special_tokens: Mapping[str, str],
    *,
    add_bos_token: bool,
    add_eos_token: bool,
    chat_template: str | None,
    clean_up_tokenization_spaces: bool = False,
) -> PreTrainedTokenizerFast:
    """Wrap a ``tokenizers.Tokenizer`` as a transformers ``PreTrainedTokenizerFast``.

    ``special_tokens`` maps roles (``bos_token``, ``eos_token``, ...; see
    ``SPECIAL_TOKEN_ROLES``) to token strings, each of which must already be in the vocabulary
    (ValueError otherwise: a role pointing at a missing token would silently add a new id).
    """
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    missing = {role: tok for role, tok in special_tokens.items() if tok not in vocab}
    if missing:
        raise ValueError(f"special tokens not in the vocabulary: {missing}")
    kwargs = {role: special_tokens[role] for role in SPECIAL_TOKEN_ROLES if special_tokens.get(role)}
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        add_bos_token=add_bos_token,
        add_eos_token=add_eos_token,
        chat_template=chat_template,
        clean_up_tokenization_spaces=clean_up_tokenization_spaces,
        **kwargs,
    )


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _token_content(value) -> str | None:
    """A special token as tokenizer_config.json / special_tokens_map.json write it (str or dict)."""
    if isinstance(value, dict):
        return value.get("content")
    return value if isinstance(value, str) else None


def build_fast_tokenizer_from_assets(
    asset_dir: str | Path, *, sentencepiece_user_symbols: bool = False
) -> PreTrainedTokenizerFast:
    """LLM-jp-4's tokenizer as a plain ``PreTrainedTokenizerFast`` (no remote code), from files.

    ``asset_dir`` holds a ``tokenizer.json`` (loaded as is) or a SentencePiece ``*.model``
    (converted exactly), plus ``tokenizer_config.json`` (required; its special tokens, roles and
    ``add_bos_token`` / ``add_eos_token``; ``auto_map`` ignored) and optionally
    ``special_tokens_map.json`` and ``chat_template.jinja``. ``sentencepiece_user_symbols``
    (``.model`` only): off, ``<pad>`` in text is plain text; on, it becomes id 4.

    Raises FileNotFoundError when the folder or a required file is missing and ValueError when
    a file is garbled or disagrees with another (both name the path). Nothing is cached on disk.
    What it reads from each file: docs/tokenizer.md
    """
    asset_dir = Path(asset_dir)
    expected = "tokenizer.json or a SentencePiece *.model, plus tokenizer_config.json"
    if not asset_dir.is_dir():
        raise FileNotFoundError(f"{asset_dir}: no such tokenizer folder (expected {expected})")
    config_path = asset_dir / "tokenizer_config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path}: missing (a tokenizer folder needs {expected})")
    config = _read_json(config_path)
    map_path = asset_dir / "special_tokens_map.json"
    token_map = _read_json(map_path) if map_path.is_file() else {}

    decoder = config.get("added_tokens_decoder") or {}
    try:
        token_names = {int(i): _token_content(entry) for i, entry in decoder.items()}
    except (TypeError, ValueError, AttributeError):
        raise ValueError(f"{config_path}: added_tokens_decoder must map ids to tokens") from None
    if not all(isinstance(name, str) and name for name in token_names.values()):
        raise ValueError(f"{config_path}: added_tokens_decoder has an entry without 'content'")

    roles = {}
    for role in SPECIAL_TOKEN_ROLES:
        value = _token_content(config.get(role)) or _token_content(token_map.get(role))
        if value:
            roles[role] = value
    add_bos = bool(config.get("add_bos_token", True))
    add_eos = bool(config.get("add_eos_token", False))

    json_path = asset_dir / "tokenizer.json"
    if json_path.is_file():
        try:
            tokenizer = Tokenizer.from_file(str(json_path))
        except Exception as error:  # tokenizers raises a bare Exception for a garbled file
            raise ValueError(f"{json_path}: not a tokenizers JSON file ({error})") from None
    else:
        model_files = sorted(asset_dir.glob("*.model"))
        if not model_files:
            raise FileNotFoundError(f"{asset_dir}: no tokenizer.json and no SentencePiece *.model ({expected})")
        if len(model_files) > 1:
            names = ", ".join(p.name for p in model_files)
            raise ValueError(f"{asset_dir}: several SentencePiece models ({names}); keep one")
        proto = parse_sentencepiece_model(model_files[0].read_bytes(), str(model_files[0]))
        tokenizer = sentencepiece_to_tokenizers(
            proto,
            token_names=token_names,
            add_bos_token=add_bos,
            add_eos_token=add_eos,
            sentencepiece_user_symbols=sentencepiece_user_symbols,
            source=str(model_files[0]),
        )

    # Every special token of the config must sit at its id, whichever file the vocabulary came from.
    wrong = {i: name for i, name in token_names.items() if tokenizer.token_to_id(name) != i}
    if wrong:
        first = dict(list(wrong.items())[:5])
        raise ValueError(f"{asset_dir}: these tokens of {config_path.name} are not at their ids in the vocabulary: {first}")

    template_path = asset_dir / "chat_template.jinja"
    if template_path.is_file():
        chat_template = template_path.read_text(encoding="utf-8")
    else:
        chat_template = config.get("chat_template") or None
    try:
        return wrap_fast_tokenizer(
            tokenizer,
            roles,
            add_bos_token=add_bos,
            add_eos_token=add_eos,
            chat_template=chat_template,
            clean_up_tokenization_spaces=bool(config.get("clean_up_tokenization_spaces", False)),
        )
    except ValueError as error:
        raise ValueError(f"{config_path}: {error}") from None
