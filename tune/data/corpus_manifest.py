"""`PREFIX.manifest.json`: what a tokenized corpus (`PREFIX.bin` + `PREFIX.idx`) holds and how it was made.

Written last, after the `.bin` and `.idx` are in place, so a manifest means a complete output:

    format          MANIFEST_FORMAT
    documents       documents in the .idx (each BOS + ids + EOD)
    tokens          tokens in the .bin (BOS and EOD included)
    dtype           numpy name of the token dtype (Megatron's DType.optimal_dtype of the vocabulary)
    bin_bytes       size of the .bin (a check that the pair on disk is the one described)
    tokenizer       {source, fingerprint (tune.data.cache.tokenizer_fingerprint), bos_id, eod_id, vocab_size}
    sources         [{path (as given), xxh3_128, size, documents, tokens}], in output order
    text_field      the JSONL key / parquet column read
    txt_documents   how .txt files were split (file | line)
    shard           {index, count} for one shard's output, absent otherwise
    tune_version, created (UTC, ISO 8601)
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path

from tune.errors import UserError

MANIFEST_FORMAT = 1
# Keys that differ between two runs over the same inputs (what a reproduction check leaves out).
VOLATILE_KEYS = ("created", "tune_version")


def manifest_path(prefix: str | Path) -> Path:
    return Path(f"{prefix}.manifest.json")


def write_json_atomic(path: Path, value: dict) -> None:
    """Write ``value`` as JSON to ``path`` through a temporary file and a rename: never half a file."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(value, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``; None when the file is missing or not a JSON object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def tune_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("tune")
    except PackageNotFoundError:
        return "unknown"


def build_manifest(*, tokenizer: dict, sources: list[dict], dtype: str, bin_bytes: int, text_field: str,
                   txt_documents: str, shard: tuple[int, int] | None = None) -> dict:
    """The manifest of an output made of ``sources`` (module docstring)."""
    manifest = {
        "format": MANIFEST_FORMAT,
        "documents": sum(source["documents"] for source in sources),
        "tokens": sum(source["tokens"] for source in sources),
        "dtype": dtype,
        "bin_bytes": bin_bytes,
        "tokenizer": tokenizer,
        "sources": sources,
        "text_field": text_field,
        "txt_documents": txt_documents,
    }
    if shard is not None:
        manifest["shard"] = {"index": shard[0], "count": shard[1]}
    manifest["tune_version"] = tune_version()
    manifest["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return manifest


def complete_manifest(prefix: str | Path) -> dict | None:
    """The manifest of ``prefix`` when the output is complete: manifest readable, .idx present and
    .bin of the recorded size; else None."""
    manifest = read_json(manifest_path(prefix))
    if manifest is None or manifest.get("format") != MANIFEST_FORMAT:
        return None
    bin_path, idx_path = Path(f"{prefix}.bin"), Path(f"{prefix}.idx")
    if not idx_path.is_file() or not bin_path.is_file() or bin_path.stat().st_size != manifest.get("bin_bytes"):
        return None
    return manifest


def require_complete(prefix: str | Path, what: str) -> dict:
    """``complete_manifest(prefix)``, or UserError naming ``what`` and the files found missing."""
    manifest = complete_manifest(prefix)
    if manifest is None:
        present = [p.name for p in (manifest_path(prefix), Path(f"{prefix}.bin"), Path(f"{prefix}.idx")) if p.exists()]
        raise UserError(f"{what} {prefix} is missing or incomplete (found: {', '.join(present) or 'nothing'}); "
                        "run (or rerun) its `tune data tokenize --shard` to completion first")
    return manifest
