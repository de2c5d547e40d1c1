"""One rank of a two-process job (torchrun, gloo): prepare two recipes' corpora as `tune run` does, the first
prepared by rank 0 (a shared cache: the main rank prepares) and the second by rank 1 (as the first process of a
second node prepares for its node-local cache), the other rank waiting on the file system each time; write what
this rank read to OUT/<recipe stem>-rank<R>.json."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch.distributed as dist


def main(out: str, *recipes: str) -> None:
    from tests.data.corpus_helpers import StandInTokenizer, load
    from tune.data.cache import JobPreparation
    from tune.data.corpus_pipeline import prepare_corpora

    dist.init_process_group("gloo")
    rank = dist.get_rank()
    token = os.environ.get("TORCHELASTIC_RUN_ID", "job")
    for preparer, recipe in enumerate(recipes):
        job = JobPreparation(prepares=rank == preparer, preparer=f"rank {preparer}", token=token)
        data = prepare_corpora(load(Path(recipe)), StandInTokenizer(), job=job)
        windows = [data.train[i]["input_ids"].tolist() for i in range(len(data.train))]
        Path(out, f"{Path(recipe).stem}-rank{rank}.json").write_text(
            json.dumps({"from_cache": data.from_cache, "windows": windows}))
    dist.destroy_process_group()


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    main(*sys.argv[1:])
