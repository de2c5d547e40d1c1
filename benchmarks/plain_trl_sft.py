"""The baseline for benchmarks/overhead.py: a plain TRL SFT script with no tune import.

It trains the model folder it is given on already tokenized rows (`input_ids` + `labels`, one JSON
object per line) with the hyper-parameters given as JSON, exactly as one would write it by hand
with TRL, and prints one JSON line: tokens/s over `trainer.train()` and the logged losses.
"""

import argparse
import json
import sys

import torch
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback, set_seed
from trl import SFTConfig, SFTTrainer


class LossRecorder(TrainerCallback):
    def __init__(self):
        self.losses = []

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs:
            self.losses.append(float(logs["loss"]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--hparams", required=True, help="JSON with the recipe's values")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    hp = json.loads(args.hparams)

    rows = [json.loads(line) for line in open(args.data)]
    dataset = Dataset.from_dict({"input_ids": [r["input_ids"] for r in rows], "labels": [r["labels"] for r in rows]})
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    set_seed(hp["seed"])
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32, attn_implementation="sdpa")
    config = SFTConfig(
        output_dir=args.out,
        max_steps=hp["max_steps"],
        learning_rate=hp["lr"],
        lr_scheduler_type="cosine_with_min_lr",
        lr_scheduler_kwargs={"min_lr": hp["min_lr"]},
        warmup_steps=hp["warmup_steps"],
        per_device_train_batch_size=hp["batch"],
        gradient_accumulation_steps=hp["accumulation"],
        adam_beta1=hp["beta1"],
        adam_beta2=hp["beta2"],
        weight_decay=hp["weight_decay"],
        max_grad_norm=hp["clip"],
        seed=hp["seed"],
        data_seed=hp["seed"],
        bf16=False,
        use_cpu=not torch.cuda.is_available(),
        max_length=hp["max_len"],
        logging_steps=hp["logging_steps"],
        logging_first_step=True,
        report_to="none",
        save_strategy="no",
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=True,
    )
    lora = LoraConfig(r=hp["r"], lora_alpha=hp["alpha"], lora_dropout=hp["dropout"],
                      target_modules="all-linear", task_type="CAUSAL_LM")
    recorder = LossRecorder()
    set_seed(hp["seed"])
    trainer = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=lora, callbacks=[recorder])
    result = trainer.train()
    runtime = result.metrics["train_runtime"]
    print(json.dumps({"tokens_per_s": trainer.state.num_input_tokens_seen / runtime, "losses": recorder.losses,
                      "tokens": trainer.state.num_input_tokens_seen, "runtime_s": runtime}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
