"""PreparedData: what the data pipeline hands a training method."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tune.data.report import DataReport

if TYPE_CHECKING:
    from datasets import Dataset


@dataclass
class PreparedData:
    """The training and eval sets (memory-mapped Arrow: the builder's columns plus `dataset`, the
    index into `data.datasets`), the data report, the cache key, and whether it came from the cache."""

    train: Dataset
    eval: Dataset
    report: DataReport
    key: str
    from_cache: bool
