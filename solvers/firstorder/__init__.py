"""First-order algorithms of the ``torch`` backend (imported only when a first-order solve runs).

* :mod:`.objective` - the problems' objectives, batched in torch, and their proximal maps;
* :mod:`.projections` - closed-form projections onto the graphs of ReLU, LeakyReLU, max-pool;
* :mod:`.linops` - linear operators and the solves with :math:`I + W^T W` (dense inverse or
  Woodbury, FFT for circular convolutions, conjugate gradients in general);
* :mod:`.gradient` - gradient descent, Adam, normalized and sign projected gradient;
* :mod:`.admm` - the ADMM iterations of Wong & Kolter (2017).

This ``__init__`` imports nothing, so discovering the backends does not import torch.
"""
