"""One process of a test job of tests/distributed/test_preemption.py: `tune` itself, with a save that hangs.

    python preemption_worker.py VERB ARGS...     (under torchrun), exactly as `python -m tune VERB ARGS...`

    TUNE_TEST_HANG_SAVE_AT=N,FLAG    the checkpoint save at step N or later hangs after transformers has
                                     written the weights, optimizer and scheduler (before the RNG states,
                                     the trainer state and tune's completion marker): FLAG is written and
                                     the process sleeps, so the test can `kill -9` the job mid-save
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path


def instrument() -> None:
    hang = os.environ.get("TUNE_TEST_HANG_SAVE_AT")
    if not hang:
        return
    step, _, flag = hang.partition(",")
    import transformers

    real = transformers.Trainer._save_optimizer_and_scheduler

    def hanging(self, output_dir):
        real(self, output_dir)
        if self.state.global_step >= int(step):
            if self.args.should_save:  # the process that wrote optimizer.pt (under DDP the others write nothing)
                Path(flag).write_text(f"{self.state.global_step}\n")
            time.sleep(600)

    transformers.Trainer._save_optimizer_and_scheduler = hanging


if __name__ == "__main__":
    instrument()
    from tune.cli import main

    sys.exit(main(sys.argv[1:]))
