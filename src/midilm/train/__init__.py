"""Training: windows over binidx (`data`), the optimizer and schedule (`optim`), the loop (`loop`),
strategies single/DDP/DeepSpeed (`engine`, `distributed`), precision (`precision`), checkpoints
(`checkpoint`), wandb and dvclive (`tracking`), the DVC stage (`stage`), a torchrun that asks to
be requeued (`torchrun`), and LoRA fine-tuning (`instruct`, `instruct_data`)."""
