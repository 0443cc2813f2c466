"""Small helpers shared by every concern: atomic I/O, params, paths, hashing, logging."""
