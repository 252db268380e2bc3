"""Modules: parameters gathered by name, layers, and checkpoints on disk.

A *parameter* is a leaf Tensor with ``requires_grad=True``. A ``Module`` is an ordinary Python
object that keeps its parameters, and its sub-modules, as attributes; nothing is registered. To
list them, ``named_parameters()`` walks the object's attributes in the order they were set and
follows sub-modules, lists, tuples and dicts, naming each parameter by the path that reaches it:

    class VAE(Module):
        def __init__(self):
            self.encoder = MLP([784, 200, 4])        # -> "encoder.layers.0.weight", ...
            self.heads = {"mu": Linear(2, 2)}        # -> "heads.mu.weight", "heads.mu.bias"

A tensor reachable along two paths (a shared layer) is listed once, under the first name.

``state_dict()`` copies the parameters into a ``{name: array}`` dict and ``load_state_dict()``
copies such a dict back, after checking every key, shape and dtype, so that a bad checkpoint
changes nothing. ``save`` and ``load`` put that dict in an ``.npz`` file (NumPy's zip of arrays,
readable with ``np.load`` anywhere) and never unpickle anything.

Layers: ``Linear`` computes ``x @ W + b`` with the rows of ``x`` as examples; ``MLP`` stacks
Linear layers with an activation between them.
"""
from __future__ import annotations

import math
import os
import uuid
import zipfile
from collections.abc import Mapping
from typing import Callable, Optional, Sequence

import numpy as np

from tinygrad_reparam import checks, composed, fused, ops
from tinygrad_reparam.random import get_rng
from tinygrad_reparam.tensor import Tensor


class Module:
    """Base class for anything with parameters. Subclasses set attributes and write ``forward``.

    Parameters are found, not registered: any attribute holding a leaf Tensor with
    ``requires_grad=True``, a Module, or a list / tuple / dict of those (nested as deep as you
    like) is searched. Tensors that do not require grad (constants, buffers) and non-leaf tensors
    (results of computations cached on the module) are not parameters.
    """

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        """``module(x)`` is ``module.forward(x)``."""
        return self.forward(*args, **kwargs)

    def named_parameters(self) -> list[tuple[str, Tensor]]:
        """``[(name, tensor), ...]`` in attribute order, each tensor once.

        Names are dotted paths: attribute names, list and tuple positions, dict keys, e.g.
        ``"encoder.layers.0.weight"``.
        """
        found: list[tuple[str, Tensor]] = []
        seen_tensors: set[int] = set()
        seen_modules: set[int] = set()  # also stops cycles (a module that refers to its parent)

        def visit(value, name: str) -> None:
            if isinstance(value, Tensor):
                if value.requires_grad and value.is_leaf and id(value) not in seen_tensors:
                    seen_tensors.add(id(value))
                    found.append((name, value))
            elif isinstance(value, Module):
                if id(value) not in seen_modules:
                    seen_modules.add(id(value))
                    for key, item in vars(value).items():
                        visit(item, _join(name, key))
            elif isinstance(value, (list, tuple)):
                for index, item in enumerate(value):
                    visit(item, _join(name, str(index)))
            elif isinstance(value, dict):
                for key, item in value.items():
                    visit(item, _join(name, str(key)))

        visit(self, "")
        return found

    def parameters(self) -> list[Tensor]:
        """The parameters in the order of ``named_parameters()``; hand them to an optimizer."""
        return [tensor for _, tensor in self.named_parameters()]

    def zero_grad(self) -> None:
        """Forget accumulated gradients: set every parameter's ``.grad`` to None."""
        for tensor in self.parameters():
            tensor.grad = None

    def state_dict(self) -> dict[str, np.ndarray]:
        """``{name: copy of the parameter's array}``: a snapshot later training does not change."""
        return {name: tensor.data.copy() for name, tensor in self.named_parameters()}

    def load_state_dict(self, state: Mapping[str, np.ndarray], strict: bool = True) -> None:
        """Copy the arrays in ``state`` into the parameters, in place (each keeps its dtype).

        Everything is checked before anything is copied, and all problems are reported together
        in one ValueError: keys the module lacks or has no value for (unless ``strict=False``,
        which skips both), arrays of the wrong shape, arrays that are not floating point.
        So a failed load leaves the module exactly as it was.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"load_state_dict: expected a dict of arrays (e.g. from state_dict()), "
                            f"got {type(state).__name__}")
        strict = checks.flag(strict, "load_state_dict: strict")
        parameters = dict(self.named_parameters())
        missing = [name for name in parameters if name not in state]
        unexpected = [str(key) for key in state if key not in parameters]
        bad_values = []
        to_copy = []
        for name, tensor in parameters.items():
            if name not in state:
                continue
            value = state[name]
            value = value.data if isinstance(value, Tensor) else np.asarray(value)
            if value.dtype.kind != "f":
                bad_values.append(f"{name}: dtype {value.dtype} is not floating point")
            elif value.shape != tensor.shape:
                bad_values.append(f"{name}: shape {value.shape} in the state, "
                                  f"{tensor.shape} in the module")
            elif not np.isfinite(value).all():
                bad_values.append(f"{name}: holds NaN or infinity")
            elif not tensor.data.flags.writeable:
                bad_values.append(f"{name}: the parameter's array is read-only")
            else:
                to_copy.append((tensor, value))

        problems = []
        if strict and missing:
            problems.append(f"missing keys (in the module, not in the state): {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys (in the state, not in the module): {unexpected}")
        if bad_values:
            problems.append("values that do not fit:\n    " + "\n    ".join(bad_values))
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__}: nothing was loaded "
                             f"because of\n  " + "\n  ".join(problems))

        for tensor, value in to_copy:
            np.copyto(tensor.data, value)  # in place: optimizers holding the tensor see the values


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


class Linear(Module):
    """An affine layer ``y = x @ W + b``: the rows of ``x`` are examples, its columns features.

    ``weight`` has shape ``(in_features, out_features)`` and ``bias`` shape ``(out_features,)``,
    so a batch ``x`` of shape ``(n, in_features)`` maps to ``(n, out_features)`` (any leading
    axes work the same way). Initialisation, as PyTorch's default for its Linear layer:

        W[i, j], b[j]  ~  Uniform(-k, k),   k = 1 / sqrt(in_features)

    which keeps the variance of each output near that of one input (Var = 1/3 per unit of input
    variance), so a stack of layers starts neither exploding nor vanishing. The weight is drawn
    first, then the bias, from ``rng`` (the package's default generator when None).
    """

    def __init__(self, in_features: int, out_features: int,
                 rng: Optional[np.random.Generator] = None, bias: bool = True, dtype=np.float64):
        self.in_features = checks.count(in_features, "Linear: in_features")
        self.out_features = checks.count(out_features, "Linear: out_features")
        dtype = checks.float_dtype(dtype, "Linear: dtype")
        bias = checks.flag(bias, "Linear: bias")
        rng = get_rng(rng)
        bound = 1.0 / math.sqrt(self.in_features)
        self.weight = Tensor(rng.uniform(-bound, bound, size=(self.in_features, self.out_features))
                             .astype(dtype), requires_grad=True)
        if bias:
            self.bias = Tensor(rng.uniform(-bound, bound, size=self.out_features).astype(dtype),
                               requires_grad=True)
        else:
            self.bias = None

    def forward(self, x) -> Tensor:
        if not isinstance(x, Tensor):
            x = Tensor(x)
        if x.ndim == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"{self!r}: input of shape {x.shape} should have {self.in_features} "
                             f"features on its last axis (rows are examples)")
        return fused.linear(x, self.weight, self.bias)  # x @ W + b, one primitive (fused.py)

    def __repr__(self) -> str:
        return (f"Linear(in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None})")


# The activations MLP knows by name, each a function from Tensor to Tensor (tanh in its fast
# form, equal to ops.tanh bit for bit: see fused.py).
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "tanh": fused.tanh,
    "relu": composed.relu,
    "sigmoid": ops.sigmoid,
    "softplus": ops.softplus,
}


class MLP(Module):
    """A multilayer perceptron: Linear layers between consecutive ``sizes``, with the
    activation after every layer except the last (whose output stays linear).

    ``MLP([2, 16, 16, 1])`` has three layers: 2 -> 16 -> 16 -> 1, stored in ``self.layers``
    (parameter names ``layers.0.weight``, ``layers.0.bias``, ...). ``activation`` is one of
    ``"tanh"``, ``"relu"``, ``"sigmoid"``, ``"softplus"``. Layers are initialised in order from
    the same ``rng`` (see ``Linear``).
    """

    def __init__(self, sizes: Sequence[int], activation: str = "tanh",
                 rng: Optional[np.random.Generator] = None, dtype=np.float64):
        sizes = checks.layer_sizes(sizes, "MLP")
        if not isinstance(activation, str) or activation not in ACTIVATIONS:
            raise ValueError(f"MLP: unknown activation {activation!r}; choose one of "
                             f"{sorted(ACTIVATIONS)}")
        rng = get_rng(rng)
        self.sizes = sizes
        self.activation = activation
        self.layers = [Linear(n_in, n_out, rng=rng, dtype=dtype)
                       for n_in, n_out in zip(self.sizes[:-1], self.sizes[1:])]

    def forward(self, x) -> Tensor:
        activation = ACTIVATIONS[self.activation]
        for layer in self.layers[:-1]:
            x = activation(layer(x))
        return self.layers[-1](x)

    def __repr__(self) -> str:
        return f"MLP(sizes={list(self.sizes)}, activation={self.activation!r})"


# ---------------------------------------------------------------------------------------------
# Checkpoints: the state dict as an .npz file
_SAVEZ_KEYWORDS = ("file", "allow_pickle")  # np.savez's own arguments cannot be array names


def _check_module_and_path(module, path, where: str) -> None:
    if not isinstance(module, Module):
        raise TypeError(f"{where}: module must be a tinygrad_reparam.nn.Module, got {type(module).__name__}")
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{where}: path must be a str or os.PathLike, got {type(path).__name__}")


def save(module: Module, path) -> None:
    """Write ``module.state_dict()`` to ``path`` as an ``.npz`` file (exactly that path; no
    suffix is added). Atomic: the arrays go to a temporary file in the same directory, which then
    replaces ``path`` in one step, so a crash never leaves a half-written checkpoint behind."""
    _check_module_and_path(module, path, "save")
    state = module.state_dict()
    clashes = [name for name in state if name in _SAVEZ_KEYWORDS]
    if clashes:
        raise ValueError(f"save: parameter names {clashes} clash with np.savez's own arguments; "
                         f"rename those attributes")
    path = os.fspath(path)
    temporary = os.path.join(os.path.dirname(path) or ".",
                             f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")
    # O_EXCL: never reuse an existing file; mode 0o666 minus the umask, like any new file.
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            np.savez(handle, **state)  # a file object, not a name: np.savez appends no ".npz"
            handle.flush()
            os.fsync(handle.fileno())  # on disk before the rename makes it visible
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def load(module: Module, path, strict: bool = True) -> None:
    """Load a checkpoint written by ``save`` into ``module``'s parameters, in place.

    The file is read with ``np.load(..., allow_pickle=False)``: nothing in it is ever unpickled,
    so loading a file from elsewhere cannot run code. A file that is not an ``.npz`` of plain
    float arrays, or whose arrays do not fit the module (see ``Module.load_state_dict``), raises
    ValueError and leaves every parameter unchanged. A missing file raises FileNotFoundError.
    """
    _check_module_and_path(module, path, "load")
    strict = checks.flag(strict, "load: strict")
    path = os.fspath(path)
    not_a_checkpoint = f"load: {path} is not an .npz checkpoint written by save()"
    with open(path, "rb") as handle:
        try:
            contents = np.load(handle, allow_pickle=False)
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
            raise ValueError(f"{not_a_checkpoint}: {error}") from None
        if not isinstance(contents, np.lib.npyio.NpzFile):
            raise ValueError(f"{not_a_checkpoint}: it holds a single array (an .npy file), "
                             f"not named arrays")
        with contents:
            try:
                state = {name: contents[name] for name in contents.files}
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
                raise ValueError(f"{not_a_checkpoint}: {error}") from None
    try:
        module.load_state_dict(state, strict=strict)
    except ValueError as error:
        raise ValueError(f"load from {path}: {error}") from None
