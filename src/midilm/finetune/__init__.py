"""Fine-tuning of pretrained LLMs on music text (seed 004): LoRA / QLoRA adapters (`model`), the
offline stand-in base (`standin`), instruction examples in the Llama-2 chat template (`data`),
the training job (`train`, through the one training loop) and generation with the same header
(`generate`, through the one sampling loop)."""
