"""SGD with momentum, Nesterov and decoupled weight decay."""

from swift_optim_zoo.sgd.sgd import SGD

__all__ = ["SGD"]
