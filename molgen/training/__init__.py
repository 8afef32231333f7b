"""Training: the ``train`` entry point, optimizer/schedule, callbacks."""
