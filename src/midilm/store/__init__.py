"""Token storage: Megatron-style binidx (and Arrow, see `arrow.py`)."""
