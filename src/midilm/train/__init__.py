"""Training: windows over binidx (`data`), the optimizer and schedule (`optim`), the loop (`loop`),
and the DVC stage (`stage`)."""
