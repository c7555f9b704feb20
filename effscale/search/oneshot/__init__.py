"""The one-shot (differentiable) search: a weight-sharing supernet, its expected cost and its training loop."""
