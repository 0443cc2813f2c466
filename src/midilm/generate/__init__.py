"""Generation: sampling (temperature, top-k, top-p) with a KV cache, and the generate stage."""
