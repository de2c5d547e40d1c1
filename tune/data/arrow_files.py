"""Arrow IPC files as the pipeline's working storage: written in batches, read back without holding them.

Every step of the data pipeline streams rows to such a file and the next step reads them back
batch by batch (``read_batches``, through ordinary reads: the pages land in the OS cache, not in
this process's resident memory), so memory stays flat however large the corpus is.

Intermediate files use the IPC *file* format; the prepared train/eval sets use the *stream*
format, which ``datasets.Dataset.from_file`` memory-maps.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

WRITE_BATCH_ROWS = 1024


class BatchWriter:
    """Rows appended one at a time (values in ``schema`` order), written ``batch_rows`` at a time."""

    def __init__(self, path: Path, schema: pa.Schema, stream: bool = False, batch_rows: int = WRITE_BATCH_ROWS) -> None:
        self.path, self.schema, self.batch_rows = Path(path), schema, batch_rows
        self._sink = pa.OSFile(str(path), "wb")
        self._writer = (pa.ipc.new_stream if stream else pa.ipc.new_file)(self._sink, schema)
        self._rows: list[tuple] = []
        self.count = 0

    def append(self, row: tuple) -> None:
        self._rows.append(row)
        if len(self._rows) >= self.batch_rows:
            self._flush()

    def write_table(self, table: pa.Table) -> None:
        """Write ``table`` (same schema) after the rows appended so far."""
        self._flush()
        self._writer.write_table(table)
        self.count += table.num_rows

    def close(self) -> int:
        """Write what is left and close the file; the number of rows written."""
        self._flush()
        self._writer.close()
        self._sink.close()
        return self.count

    def _flush(self) -> None:
        if not self._rows:
            return
        columns = [pa.array(values, type=field.type) for values, field in zip(zip(*self._rows), self.schema)]
        self._writer.write_batch(pa.record_batch(columns, schema=self.schema))
        self.count += len(self._rows)
        self._rows = []


def read_batches(path: Path) -> Iterator[pa.RecordBatch]:
    """The record batches of IPC file ``path``, in order, read without a memory map."""
    with pa.OSFile(str(path), "rb") as source:
        reader = pa.ipc.open_file(source)
        for index in range(reader.num_record_batches):
            yield reader.get_batch(index)
