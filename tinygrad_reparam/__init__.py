"""tinygrad_reparam: a from-scratch autodiff engine for learning the reparameterization trick."""
from tinygrad_reparam.tensor import Tensor, no_grad, is_grad_enabled, unbroadcast
from tinygrad_reparam.ops import where, concatenate
from tinygrad_reparam.composed import (maximum, minimum, stack, linear,
                                       binary_cross_entropy_with_logits)
from tinygrad_reparam.random import manual_seed, default_generator
from tinygrad_reparam.gradcheck import gradcheck, GradcheckError
from tinygrad_reparam.anomaly import detect_anomaly, AnomalyError

__version__ = "0.1.0"

__all__ = [
    "Tensor", "no_grad", "is_grad_enabled", "unbroadcast",
    "where", "maximum", "minimum", "concatenate", "stack", "linear", "binary_cross_entropy_with_logits",
    "manual_seed", "default_generator",
    "gradcheck", "GradcheckError", "detect_anomaly", "AnomalyError",
]
