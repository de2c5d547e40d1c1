"""One rank of a 2-process CptTrainer step (torchrun, gloo, CPU) over the 2 windows of
tests/training/test_router_losses.py, one window per process: rank 0 saves the router gradients as the optimizer
is about to step (after DDP has averaged them) to the file named by argv[1]."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_router_losses import GradientsAtStep, Z, collate, moe_model, windows  # noqa: E402


def main(out: str) -> None:
    from transformers import TrainingArguments

    from tune.training.trainers import CptTrainer

    seen = GradientsAtStep()
    args = TrainingArguments(output_dir=str(Path(out).parent / "run"), max_steps=1, per_device_train_batch_size=1,
                             gradient_accumulation_steps=1, learning_rate=1e-3, max_grad_norm=0.0, report_to="none",
                             use_cpu=True, remove_unused_columns=False, save_strategy="no", disable_tqdm=True, seed=0)
    trainer = CptTrainer(model=moe_model(), args=args, train_dataset=windows(2), data_collator=collate,
                         callbacks=[seen.callback], router_z_loss_coef=Z)
    trainer.train()
    assert trainer.args.world_size == 2, trainer.args.world_size
    if trainer.args.process_index == 0:
        torch.save({name: grad for name, grad in seen.grads.items() if name.endswith("mlp.gate.weight")}, out)


if __name__ == "__main__":
    main(sys.argv[1])
