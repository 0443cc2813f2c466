"""The listening test: plan blinded, randomized sessions over every model's rendered samples,
real pieces and degraded anchors; serve them to participants; export the ratings (T8)."""
