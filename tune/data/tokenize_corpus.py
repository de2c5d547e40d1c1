"""`tune data tokenize`'s engine: corpus files -> one Megatron indexed dataset (`PREFIX.bin` + `.idx`).

Documents are written exactly as LLM-jp's pre-training data were. LLM-jp tokenizes with Megatron-LM's
``tools/preprocess_data.py --tokenizer-type Llama2Tokenizer --append-eod`` (llm-jp/scripts:
pretrain/scripts/v4-preprocess/tokenize_sbatch.sh, pretrain/scripts/tokenizer/megatron_tokenizer_v3.0b1.sh;
training reads them with ``--tokenizer-type Llama2Tokenizer --tokenizer-model v4_alpha_1.0.model``,
pretrain/scripts/v4-8b-phase1/base/params.sh). In Megatron-LM (megatron/training/tokenizer/tokenizer.py,
``_Llama2Tokenizer``), ``tokenize(text)`` is ``[sp.bos_id()] + sp.encode(text)`` and ``eod`` is
``sp.eos_id()``; ``preprocess_data.py``'s encoder appends ``eod`` to every non-empty document (never
empty: it holds BOS) and adds it with ``builder.add_document(ids, [len(ids)])``. For LLM-jp-4's
SentencePiece model (llm-jp-tokenizer_ver4.0_alpha1.0.model) ``bos_id() == 1`` (``<s>``, which the
Hugging Face tokenizer names ``<|startoftext|>``) and ``eos_id() == 2`` (``</s>``, named
``<|return|>``): every document is ``[1] + ids + [2]``. tune takes the ids from the tokenizer's
``bos_token_id`` / ``eos_token_id`` (the verb checks them against the SentencePiece model's when the
tokenizer folder has one) and encodes the text as plain text (tune.data.tokenize_workers): a literal
``<|eod|>`` in a document is pieces, as SentencePiece reads it. One difference is deliberate:
SentencePiece also matches its user-defined symbol names (``<pad>``, ``<EOD>``, ``<RESERVED_003>``)
inside text, tune's tokenizer reads them as text (docs/tokenizer.md). The token dtype is Megatron's
``DType.optimal_dtype(vocabulary size)``: uint16 below 65,500 ids, int32 otherwise (LLM-jp-4: int32).

Parallel: ``workers`` processes encode batches of documents; the writer takes them in order, so
the output is byte-identical for any number of workers.

Resumable: input ``k`` is tokenized into ``PREFIX.parts/NNNNN.{bin,idx}`` under a temporary name,
renamed when complete, and only then recorded done in ``NNNNN.done.json`` (its path, size and
xxh3-128 hash). A rerun skips inputs whose record matches, redoes any other part from scratch, then
assembles the parts in input order with Megatron's ``IndexedDatasetBuilder.add_index`` into a
temporary pair, renamed into place; the manifest (tune.data.corpus_manifest) is written last and is
what marks the output complete. The parts folder is removed afterwards. A rerun over the same
inputs finds the complete output and does nothing.

Shardable: ``shard=(i, n)`` takes the i-th of n contiguous blocks of the inputs (input k of N goes
to shard ``k * n // N``) and writes ``PREFIX.shard-i-of-n``; ``merge_shards`` joins the n complete
shards in shard order, which is input order: the merged pair is byte-identical to an unsharded run.
"""

from __future__ import annotations

import gc
import os
import shutil
import sys
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import xxhash

from tune.data.cache import tokenizer_fingerprint
from tune.data.corpus_inputs import TXT_DOCUMENTS, documents, input_kind
from tune.data.corpus_manifest import (
    build_manifest,
    complete_manifest,
    manifest_path,
    read_json,
    require_complete,
    write_json_atomic,
)
from tune.data.tokenize_progress import TokenizeProgress
from tune.errors import UserError

# A batch handed to one worker: at most this many documents or characters (whichever comes first).
BATCH_DOCUMENTS = 512
BATCH_CHARACTERS = 1 << 20


@dataclass(frozen=True)
class TokenizeOptions:
    """How inputs are read and encoded (the verb's options)."""

    text_field: str = "text"
    txt_documents: str = "file"
    workers: int = 1
    progress_every: float = 5.0  # seconds between progress lines on stderr


def tokenizer_record(tokenizer, source: str) -> dict:
    """The manifest's ``tokenizer`` entry; UserError when the tokenizer has no BOS or EOS token."""
    bos_id, eod_id = tokenizer.bos_token_id, tokenizer.eos_token_id
    if bos_id is None or eod_id is None:
        raise UserError(f"tokenizer {source}: it has no {'BOS' if bos_id is None else 'EOS'} token, and every "
                        "document is written as BOS + text + EOD (the EOS token); use the model's own tokenizer")
    return {"source": source, "fingerprint": tokenizer_fingerprint(tokenizer), "bos_id": bos_id,
            "eod_id": eod_id, "vocab_size": len(tokenizer)}


def token_dtype(vocab_size: int) -> str:
    """Megatron's token dtype for a vocabulary (DType.optimal_dtype), as a numpy name."""
    import numpy as np

    return np.dtype(_indexed().DType.optimal_dtype(vocab_size)).name


def shard_prefix(prefix: str | Path, index: int, count: int) -> str:
    return f"{prefix}.shard-{index}-of-{count}"


def shard_inputs(inputs: list[Path], index: int, count: int) -> list[Path]:
    """Shard ``index``'s contiguous block of ``inputs`` (input k of N goes to shard k * count // N);
    UserError for a shard outside 0..count-1 or more shards than inputs."""
    if count < 1 or not 0 <= index < count:
        raise UserError(f"--shard {index}/{count}: expected i/n with 0 <= i < n")
    if count > len(inputs):
        raise UserError(f"--shard {index}/{count}: {count} shards but only {len(inputs)} input files; "
                        "every shard needs at least one file")
    return [path for k, path in enumerate(inputs) if k * count // len(inputs) == index]


def check_inputs(inputs: list[Path], out: str | Path) -> None:
    """UserError for an empty input list, a missing or unknown input, or an --out whose folder is missing."""
    if not inputs:
        raise UserError("no input files: name one or more .jsonl, .jsonl.gz, .parquet or .txt files")
    for path in inputs:
        if not path.is_file():
            raise UserError(f"input {path}: no such file")
        input_kind(path)
    parent = Path(out).parent
    if not parent.is_dir():
        raise UserError(f"--out {out}: the folder {parent} does not exist; create it first")


def tokenize_corpus(inputs: list[Path], out: str | Path, tokenizer, source: str,
                    options: TokenizeOptions = TokenizeOptions(), shard: tuple[int, int] | None = None,
                    stream=None) -> dict:
    """Tokenize ``inputs`` into ``out``.bin/.idx (or shard ``shard``'s prefix) and return its manifest.

    ``tokenizer`` is a transformers fast tokenizer, ``source`` what the user named it by. Refuses
    (UserError) what ``check_inputs`` refuses, a bad line of an input (tune.data.corpus_inputs), a
    ``.parts`` folder left by a run with another tokenizer or options, and workers < 1."""
    stream = stream or sys.stderr
    inputs = [Path(path) for path in inputs]
    check_inputs(inputs, out)
    if options.workers < 1:
        raise UserError(f"--workers {options.workers}: must be at least 1")
    if options.txt_documents not in TXT_DOCUMENTS:
        raise UserError(f"--txt-documents {options.txt_documents!r}: expected one of {', '.join(TXT_DOCUMENTS)}")
    if shard is not None:
        inputs = shard_inputs(inputs, *shard)
        out = shard_prefix(out, *shard)
    record = tokenizer_record(tokenizer, source)
    dtype = token_dtype(record["vocab_size"])
    identities = [_identity(path) for path in inputs]
    job = {"tokenizer": record["fingerprint"], "bos_id": record["bos_id"], "eod_id": record["eod_id"], "dtype": dtype,
           "text_field": options.text_field, "txt_documents": options.txt_documents}
    done = complete_manifest(out)
    if done is not None and _same_job(done, job, identities):
        print(f"tokenize: {out} is already complete ({done['documents']:,} documents); nothing to do",
              file=stream, flush=True)
        return done
    parts = Path(f"{out}.parts")
    _claim_parts(parts, job)
    progress = TokenizeProgress(sum(identity["size"] for identity in identities), options.progress_every, stream)
    records = []
    with _encoder(tokenizer, record, dtype, options.workers) as encode:
        for k, (path, identity) in enumerate(zip(inputs, identities)):
            records.append(_part(path, identity, parts / f"{k:05d}", encode, options, dtype, progress))
    manifest = _assemble(out, [parts / f"{k:05d}" for k in range(len(inputs))], dtype,
                         tokenizer=record, sources=[{"path": str(path), **_public(identity), **counts}
                                                    for path, identity, counts in zip(inputs, identities, records)],
                         text_field=options.text_field, txt_documents=options.txt_documents, shard=shard)
    shutil.rmtree(parts)
    print(progress.line(), file=stream, flush=True)
    return manifest


def merge_shards(out: str | Path, count: int, stream=None) -> dict:
    """Join the ``count`` complete shard outputs of ``out`` into ``out``.bin/.idx, in shard order
    (= input order), and return the manifest. Refuses (UserError) when a shard is missing or
    incomplete, or when shards disagree on tokenizer, dtype or options."""
    stream = stream or sys.stderr
    if count < 1:
        raise UserError(f"--merge-shards {count}: must be at least 1")
    parent = Path(out).parent
    if not parent.is_dir():
        raise UserError(f"--out {out}: the folder {parent} does not exist")
    prefixes = [shard_prefix(out, index, count) for index in range(count)]
    manifests = [require_complete(prefix, f"shard {index} of {count}:") for index, prefix in enumerate(prefixes)]
    first = manifests[0]
    for index, manifest in enumerate(manifests[1:], start=1):
        for key in ("tokenizer", "dtype", "text_field", "txt_documents"):
            if manifest[key] != first[key]:
                raise UserError(f"shard {index} of {count} ({prefixes[index]}) was made with another {key} than "
                                f"shard 0: {manifest[key]} vs {first[key]}; retokenize it like the others")
    manifest = _assemble(out, [Path(prefix) for prefix in prefixes], first["dtype"], tokenizer=first["tokenizer"],
                         sources=[source for manifest in manifests for source in manifest["sources"]],
                         text_field=first["text_field"], txt_documents=first["txt_documents"], shard=None)
    print(f"tokenize: merged {count} shards into {out} ({manifest['documents']:,} documents, "
          f"{manifest['tokens']:,} tokens)", file=stream, flush=True)
    return manifest


def _identity(path: Path) -> dict:
    """What a part's record is checked against: the resolved path, size and xxh3-128 hash."""
    digest = xxhash.xxh3_128()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return {"resolved": str(path.resolve()), "size": path.stat().st_size, "xxh3_128": digest.hexdigest()}


def _public(identity: dict) -> dict:
    return {"xxh3_128": identity["xxh3_128"], "size": identity["size"]}


def _same_job(manifest: dict, job: dict, identities: list[dict]) -> bool:
    if manifest["tokenizer"]["fingerprint"] != job["tokenizer"] or manifest["dtype"] != job["dtype"]:
        return False
    if (manifest["text_field"], manifest["txt_documents"]) != (job["text_field"], job["txt_documents"]):
        return False
    return [_public(i) for i in identities] == [{k: s[k] for k in ("xxh3_128", "size")} for s in manifest["sources"]]


def _claim_parts(parts: Path, job: dict) -> None:
    """Create ``parts`` with its job record, or check that an earlier run's record is this job's."""
    parts.mkdir(exist_ok=True)
    recorded = read_json(parts / "job.json")
    if recorded is None:
        write_json_atomic(parts / "job.json", job)
    elif recorded != job:
        changed = ", ".join(key for key in job if recorded.get(key) != job[key])
        raise UserError(f"{parts} holds parts of an earlier run with another {changed}; "
                        "remove that folder to start over, or rerun with the earlier settings")


def _part(path: Path, identity: dict, part: Path, encode, options: TokenizeOptions, dtype: str,
          progress: TokenizeProgress) -> dict:
    """Tokenize ``path`` into the part ``part`` unless a finished part of the same file is there;
    returns its ``{documents, tokens}``."""
    done_path = part.with_name(part.name + ".done.json")
    done = read_json(done_path)
    if (done is not None and {k: done.get(k) for k in identity} == identity
            and Path(f"{part}.bin").is_file() and Path(f"{part}.idx").is_file()):
        progress.skip(identity["size"])
        return {"documents": done["documents"], "tokens": done["tokens"]}
    done_path.unlink(missing_ok=True)
    counts = _write_part(path, part, encode, options, dtype, progress)
    write_json_atomic(done_path, {**identity, **counts})
    return counts


def _write_part(path: Path, part: Path, encode, options: TokenizeOptions, dtype: str,
                progress: TokenizeProgress) -> dict:
    temporary = f"{part}.tmp"
    builder = _indexed().IndexedDatasetBuilder(f"{temporary}.bin", dtype=_numpy_dtype(dtype))
    document_count = token_count = bytes_before = 0
    for (ids, lengths), bytes_done in encode(_batches(documents(path, options.text_field, options.txt_documents))):
        start = 0
        for length in lengths.tolist():
            builder.add_document(ids[start:start + length], [length])
            start += length
        document_count += len(lengths)
        token_count += len(ids)
        progress.add(len(lengths), len(ids), bytes_done - bytes_before)
        bytes_before = bytes_done
    builder.finalize(f"{temporary}.idx")
    os.replace(f"{temporary}.bin", f"{part}.bin")
    os.replace(f"{temporary}.idx", f"{part}.idx")
    return {"documents": document_count, "tokens": token_count}


def _batches(docs: Iterator[tuple[str, int]]) -> Iterator[tuple[list[str], int]]:
    """Group documents into batches (BATCH_DOCUMENTS / BATCH_CHARACTERS), each with the bytes read
    after its last document."""
    texts, characters, bytes_done = [], 0, 0
    for text, bytes_done in docs:
        texts.append(text)
        characters += len(text)
        if len(texts) >= BATCH_DOCUMENTS or characters >= BATCH_CHARACTERS:
            yield texts, bytes_done
            texts, characters = [], 0
    if texts:
        yield texts, bytes_done


class _encoder:
    """Context manager giving ``encode(batches)``: an iterator of ``((ids, lengths), bytes_done)``
    in batch order, encoded here (1 worker) or by a pool of spawned processes."""

    def __init__(self, tokenizer, record: dict, dtype: str, workers: int) -> None:
        self.tokenizer, self.ids = tokenizer, (record["bos_id"], record["eod_id"], dtype)
        self.workers, self.pool, self.encoder = workers, None, None

    def __enter__(self):
        from tune.data import tokenize_workers

        if self.workers == 1:  # the caller's tokenizer itself: no copy to build
            self.encoder = encoder = tokenize_workers.DocumentEncoder(self.tokenizer.backend_tokenizer, *self.ids)
            return lambda batches: ((encoder.encode(texts), done) for texts, done in batches)
        import multiprocessing

        self.pool = multiprocessing.get_context("spawn").Pool(
            self.workers, initializer=tokenize_workers.init_worker,
            initargs=(self.tokenizer.backend_tokenizer.to_str(), *self.ids))
        return self._in_pool

    def _in_pool(self, batches):
        from tune.data.tokenize_workers import encode_in_worker

        pending = deque()  # at most 2 batches per worker in flight: memory stays bounded
        for texts, done in batches:
            pending.append((self.pool.apply_async(encode_in_worker, (texts,)), done))
            if len(pending) >= 2 * self.workers:
                result, bytes_done = pending.popleft()
                yield result.get(), bytes_done
        while pending:
            result, bytes_done = pending.popleft()
            yield result.get(), bytes_done

    def __exit__(self, *exc) -> None:
        if self.encoder is not None:
            self.encoder.restore()
        if self.pool is not None:
            self.pool.terminate() if exc[0] else self.pool.close()
            self.pool.join()


def _indexed():
    """``megatron.core.datasets.indexed_dataset``, imported without its warnings that Transformer Engine
    and Apex are absent (megatron.core's package import; nothing here needs them)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from megatron.core.datasets import indexed_dataset
    return indexed_dataset


def _numpy_dtype(name: str):
    import numpy as np

    return np.dtype(name).type


def _assemble(out: str | Path, pieces: list[Path], dtype: str, **manifest_fields) -> dict:
    """Concatenate the indexed datasets ``pieces`` (in order) into ``out`` with Megatron's
    ``add_index``, through temporary files renamed into place, then write the manifest last."""
    manifest_path(out).unlink(missing_ok=True)  # from here until the end, the output is not complete
    temporary = f"{out}.assembling"
    builder = _indexed().IndexedDatasetBuilder(f"{temporary}.bin", dtype=_numpy_dtype(dtype))
    gc.freeze()  # add_index runs gc.collect() per piece: ~0.4 s each over torch's objects, unless frozen
    try:
        for piece in pieces:
            builder.add_index(str(piece))
    finally:
        gc.unfreeze()
    builder.finalize(f"{temporary}.idx")
    os.replace(f"{temporary}.bin", f"{out}.bin")
    os.replace(f"{temporary}.idx", f"{out}.idx")
    manifest = build_manifest(dtype=dtype, bin_bytes=Path(f"{out}.bin").stat().st_size, **manifest_fields)
    write_json_atomic(manifest_path(out), manifest)
    return manifest
