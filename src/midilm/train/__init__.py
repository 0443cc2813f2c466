"""Training: the one loop (`loop`) and the run around it (`run`: processes, device, checkpoints,
trackers, outputs); batches of windows over binidx (`data`); the optimizer and schedule
(`optim`); strategies single/DDP/DeepSpeed (`engine`, `distributed`); precision (`precision`);
checkpoints (`checkpoint`); wandb and dvclive (`tracking`); metrics.json, speed.json and the loss
curve (`metrics`); the from-scratch LM job (`lm`); the DVC stage (`stage`); a torchrun that asks
to be requeued (`torchrun`). Fine-tuning's job lives in `midilm.finetune`."""
