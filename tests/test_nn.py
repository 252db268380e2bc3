"""Modules find their parameters by walking attributes, lists and dicts; Linear and MLP compute
what their docstrings say; state dicts and .npz checkpoints round-trip exactly, and bad ones are
refused whole, without unpickling anything."""
import os
import pickle

import numpy as np
import pytest

import tinygrad_reparam as tr
from tinygrad_reparam import Tensor, gradcheck
from tinygrad_reparam.nn import MLP, Linear, Module, load, save


def rng(seed=0):
    return np.random.default_rng(seed)


def param(values):
    return Tensor(np.array(values, dtype=np.float64), requires_grad=True)


# --- Module: finding parameters -----------------------------------------------------------------
class Block(Module):
    def __init__(self, seed):
        self.scale = param([1.0 + seed])
        self.constant = Tensor([5.0])  # does not require grad: not a parameter
        self.layers = [Linear(2, 3, rng=rng(seed)), Linear(3, 1, rng=rng(seed + 1))]


class Model(Module):
    def __init__(self):
        self.encoder = Block(0)
        self.heads = {"mu": Linear(1, 1, rng=rng(2)), "log_sigma": Linear(1, 1, rng=rng(3))}
        self.pair = (param([7.0]), "not a tensor", 3)
        self.offset = param(0.0)
        self.cached = self.offset * 2.0  # a computed tensor (not a leaf): not a parameter

    def forward(self, x):
        return self.encoder.layers[1](self.encoder.layers[0](x)) * self.encoder.scale + self.offset


EXPECTED_NAMES = [
    "encoder.scale",
    "encoder.layers.0.weight", "encoder.layers.0.bias",
    "encoder.layers.1.weight", "encoder.layers.1.bias",
    "heads.mu.weight", "heads.mu.bias",
    "heads.log_sigma.weight", "heads.log_sigma.bias",
    "pair.0",
    "offset",
]


def test_named_parameters_through_attributes_lists_tuples_and_dicts():
    model = Model()
    names = [name for name, _ in model.named_parameters()]
    assert names == EXPECTED_NAMES
    named = dict(model.named_parameters())
    assert named["encoder.layers.1.weight"] is model.encoder.layers[1].weight
    assert named["heads.log_sigma.bias"] is model.heads["log_sigma"].bias
    assert named["pair.0"] is model.pair[0]
    assert [id(p) for p in model.parameters()] == [id(p) for _, p in model.named_parameters()]


def test_a_shared_tensor_or_module_is_listed_once_under_its_first_name():
    model = Model()
    model.alias = model.encoder.layers[0]      # the same layer reachable twice
    model.again = [model.offset]               # the same tensor reachable twice
    model.myself = model                       # a cycle must not loop forever
    names = [name for name, _ in model.named_parameters()]
    assert names == EXPECTED_NAMES
    assert len({id(p) for p in model.parameters()}) == len(EXPECTED_NAMES)


def test_zero_grad_clears_every_parameter():
    model = Model()
    model(np.ones((4, 2))).sum().backward()
    assert all(p.grad is not None for p in model.encoder.layers[0].parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_call_runs_forward_and_a_module_without_forward_says_so():
    model = Model()
    x = np.ones((2, 2))
    np.testing.assert_array_equal(model(x).data, model.forward(x).data)
    with pytest.raises(NotImplementedError, match="Empty must define forward"):
        type("Empty", (Module,), {})()(x)


# --- Linear -------------------------------------------------------------------------------------
def test_linear_shapes_and_forward_is_x_at_w_plus_b():
    layer = Linear(3, 5, rng=rng())
    assert layer.weight.shape == (3, 5) and layer.bias.shape == (5,)
    assert layer.weight.requires_grad and layer.bias.requires_grad
    x = rng(1).standard_normal((4, 3))
    out = layer(x)
    assert out.shape == (4, 5)
    np.testing.assert_allclose(out.data, x @ layer.weight.data + layer.bias.data, rtol=1e-15)
    assert layer(Tensor(x[0])).shape == (5,)  # a single example
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]


def test_linear_initialisation_is_uniform_within_one_over_sqrt_fan_in():
    layer = Linear(16, 200, rng=rng())
    bound = 1.0 / np.sqrt(16)
    for values in (layer.weight.data, layer.bias.data):
        assert np.all(np.abs(values) <= bound)
        assert values.max() > 0.9 * bound and values.min() < -0.9 * bound  # fills the range
    # uniform(-k, k) has standard deviation k / sqrt(3)
    assert layer.weight.data.std() == pytest.approx(bound / np.sqrt(3), rel=0.05)
    assert abs(layer.weight.data.mean()) < 0.02


def test_linear_randomness_comes_from_rng_or_the_default_generator():
    a, b = Linear(4, 3, rng=rng(7)), Linear(4, 3, rng=rng(7))
    np.testing.assert_array_equal(a.weight.data, b.weight.data)
    tr.manual_seed(3)
    c = Linear(4, 3)
    tr.manual_seed(3)
    d = Linear(4, 3)
    np.testing.assert_array_equal(c.weight.data, d.weight.data)
    np.testing.assert_array_equal(c.bias.data, d.bias.data)
    assert not np.array_equal(a.weight.data, c.weight.data)


def test_linear_without_bias_and_in_float32():
    layer = Linear(2, 3, rng=rng(), bias=False, dtype=np.float32)
    assert layer.bias is None
    assert [name for name, _ in layer.named_parameters()] == ["weight"]
    assert layer.weight.dtype == np.float32
    assert layer(np.ones((1, 2), dtype=np.float32)).dtype == np.float32


@pytest.mark.parametrize("sizes", [(0, 3), (3, -1), (2.5, 3), (True, 3), ("2", 3)])
def test_linear_rejects_sizes_that_are_not_positive_integers(sizes):
    with pytest.raises(ValueError, match="positive integer"):
        Linear(*sizes)


def test_linear_rejects_wrong_input_width_and_non_float_dtype():
    with pytest.raises(ValueError, match="3 features"):
        Linear(3, 2, rng=rng())(np.ones((4, 2)))
    with pytest.raises(ValueError, match="floating point"):
        Linear(3, 2, dtype=np.int64)


# --- MLP ----------------------------------------------------------------------------------------
def test_mlp_layers_and_output_shape():
    model = MLP([3, 8, 8, 2], rng=rng())
    assert [(layer.in_features, layer.out_features) for layer in model.layers] == [(3, 8), (8, 8), (8, 2)]
    assert model(np.zeros((5, 3))).shape == (5, 2)
    assert [name for name, _ in model.named_parameters()] == [
        "layers.0.weight", "layers.0.bias", "layers.1.weight", "layers.1.bias",
        "layers.2.weight", "layers.2.bias"]


NUMPY_ACTIVATIONS = {
    "tanh": np.tanh,
    "relu": lambda h: np.maximum(h, 0.0),
    "sigmoid": lambda h: 1.0 / (1.0 + np.exp(-h)),
    "softplus": lambda h: np.log1p(np.exp(h)),
}


@pytest.mark.parametrize("activation", sorted(NUMPY_ACTIVATIONS))
def test_mlp_applies_the_activation_between_layers_but_not_after_the_last(activation):
    model = MLP([2, 4, 3, 2], activation=activation, rng=rng())
    x = rng(1).standard_normal((6, 2))
    h = x
    for i, layer in enumerate(model.layers):
        h = h @ layer.weight.data + layer.bias.data
        if i < len(model.layers) - 1:
            h = NUMPY_ACTIVATIONS[activation](h)
    np.testing.assert_allclose(model(x).data, h, rtol=1e-12, atol=1e-14)


def test_mlp_rejects_unknown_activations_and_bad_sizes():
    with pytest.raises(ValueError, match=r"'gelu'.*\['relu', 'sigmoid', 'softplus', 'tanh'\]"):
        MLP([2, 2], activation="gelu")
    with pytest.raises(ValueError, match="at least two"):
        MLP([3])
    with pytest.raises(ValueError, match=r"sizes\[1\] must be a positive integer"):
        MLP([3, 0, 1])


@pytest.mark.parametrize("activation", ["tanh", "softplus", "relu"])
def test_gradcheck_of_a_tiny_mlp_with_respect_to_weights_and_input(activation):
    model = MLP([3, 4, 2], activation=activation, rng=rng(5))
    x = Tensor(rng(6).standard_normal((5, 3)), requires_grad=True)
    first, second = model.layers

    def forward(x, w0, b0, w1, b1):
        # gradcheck hands us its own copies of the inputs: put them into the model
        first.weight, first.bias, second.weight, second.bias = w0, b0, w1, b1
        return model(x)

    assert gradcheck(forward, [x, *model.parameters()])


# --- state_dict and load_state_dict -------------------------------------------------------------
def test_state_dict_is_a_copy_keyed_by_name():
    model = MLP([2, 3, 1], rng=rng())
    state = model.state_dict()
    assert list(state) == [name for name, _ in model.named_parameters()]
    for name, tensor in model.named_parameters():
        np.testing.assert_array_equal(state[name], tensor.data)
        assert state[name] is not tensor.data
    state["layers.0.weight"][...] = 99.0
    assert not np.any(model.layers[0].weight.data == 99.0)


def test_load_state_dict_copies_in_place_and_keeps_the_dtype():
    source = MLP([2, 3, 1], rng=rng(0))
    target = MLP([2, 3, 1], rng=rng(1), dtype=np.float32)
    arrays = [p.data for p in target.parameters()]
    target.load_state_dict(source.state_dict())
    assert [p.data for p in target.parameters()] == arrays  # same array objects, refilled
    for p, q in zip(target.parameters(), source.parameters()):
        assert p.dtype == np.float32
        np.testing.assert_array_equal(p.data, q.data.astype(np.float32))


def test_load_state_dict_reports_every_problem_and_loads_nothing():
    model = MLP([2, 3, 1], rng=rng(0))
    before = model.state_dict()
    state = MLP([2, 3, 1], rng=rng(1)).state_dict()
    del state["layers.1.bias"]
    state["layers.2.weight"] = np.zeros((1, 1))
    state["layers.0.weight"] = np.zeros((3, 2))
    state["layers.0.bias"] = np.zeros(3, dtype=np.int64)
    with pytest.raises(ValueError) as error:
        model.load_state_dict(state)
    message = str(error.value)
    for expected in ["missing keys", "layers.1.bias", "unexpected keys", "layers.2.weight",
                     "layers.0.weight: shape (3, 2) in the state, (2, 3) in the module",
                     "layers.0.bias: dtype int64 is not floating point", "nothing was loaded"]:
        assert expected in message
    for name, value in model.state_dict().items():  # layers.1.weight was fine: still not loaded
        np.testing.assert_array_equal(value, before[name])


def test_load_state_dict_non_strict_skips_missing_and_unexpected_keys_only():
    model = MLP([2, 3, 1], rng=rng(0))
    other = MLP([2, 3, 1], rng=rng(1)).state_dict()
    bias = model.layers[1].bias.data.copy()
    state = {"layers.0.weight": other["layers.0.weight"], "extra": np.zeros(2)}
    model.load_state_dict(state, strict=False)
    np.testing.assert_array_equal(model.layers[0].weight.data, other["layers.0.weight"])
    np.testing.assert_array_equal(model.layers[1].bias.data, bias)
    with pytest.raises(ValueError, match="shape"):
        model.load_state_dict({"layers.0.weight": np.zeros(6)}, strict=False)


# --- save and load ------------------------------------------------------------------------------
def test_save_load_round_trip_is_bitwise_exact(tmp_path):
    model = MLP([3, 5, 2], rng=rng(0))
    path = tmp_path / "model.npz"
    save(model, path)
    fresh = MLP([3, 5, 2], rng=rng(1))  # a different initialisation
    x = rng(2).standard_normal((4, 3))
    assert not np.array_equal(fresh(x).data, model(x).data)
    load(fresh, path)
    for (name, p), (_, q) in zip(model.named_parameters(), fresh.named_parameters()):
        assert p.data.tobytes() == q.data.tobytes(), name
    assert fresh(x).data.tobytes() == model(x).data.tobytes()


def test_saved_file_is_a_plain_npz_at_exactly_the_given_path(tmp_path):
    model = MLP([2, 2], rng=rng())
    save(model, str(tmp_path / "checkpoint.bin"))  # no ".npz" is appended
    assert os.listdir(tmp_path) == ["checkpoint.bin"]  # and no temporary file is left over
    with np.load(tmp_path / "checkpoint.bin", allow_pickle=False) as contents:
        assert sorted(contents.files) == ["layers.0.bias", "layers.0.weight"]
        np.testing.assert_array_equal(contents["layers.0.weight"], model.layers[0].weight.data)


def test_a_failed_save_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    old = MLP([2, 2], rng=rng(0))
    save(old, path)
    original_bytes = path.read_bytes()

    def broken_savez(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(OSError, match="disk full"):
        save(MLP([2, 2], rng=rng(1)), path)
    assert path.read_bytes() == original_bytes
    assert os.listdir(tmp_path) == ["model.npz"]


def test_load_reports_mismatches_with_the_path_and_changes_nothing(tmp_path):
    path = tmp_path / "small.npz"
    save(MLP([2, 3, 1], rng=rng(0)), path)
    model = MLP([2, 4, 1], rng=rng(1))
    before = model.state_dict()
    with pytest.raises(ValueError, match=r"(?s)small\.npz.*shape") as error:
        load(model, path)
    assert "layers.0.weight" in str(error.value) and "layers.1.weight" in str(error.value)
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


class Unpickled:
    """Records whether anything unpickled it (it must never happen when loading)."""

    count = 0

    def __reduce__(self):
        return (_record_unpickling, ())


def _record_unpickling():
    Unpickled.count += 1
    return Unpickled()


def write_text(path):
    path.write_text("layers.0.weight = [1, 2, 3]\n")


def write_pickle(path):
    with open(path, "wb") as handle:
        pickle.dump({"layers.0.weight": Unpickled()}, handle)


def write_npz_with_object_array(path):
    state = MLP([2, 2], rng=rng()).state_dict()
    state["layers.0.bias"] = np.array([Unpickled(), Unpickled()], dtype=object)
    with open(path, "wb") as handle:
        np.savez(handle, **state)


def write_npy(path):
    with open(path, "wb") as handle:
        np.save(handle, np.zeros((2, 2)))


def write_empty(path):
    path.write_bytes(b"")


def write_truncated_npz(path):
    save(MLP([2, 2], rng=rng()), path)
    path.write_bytes(path.read_bytes()[:50])


@pytest.mark.parametrize("write", [write_text, write_pickle, write_npz_with_object_array,
                                   write_npy, write_empty, write_truncated_npz])
def test_a_file_that_is_not_a_checkpoint_is_refused_without_unpickling(tmp_path, write):
    path = tmp_path / "suspicious.npz"
    write(path)
    model = MLP([2, 2], rng=rng(1))
    before = model.state_dict()
    Unpickled.count = 0
    with pytest.raises(ValueError, match=r"suspicious\.npz is not an \.npz checkpoint"):
        load(model, path)
    assert Unpickled.count == 0
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(value, before[name])


def test_loading_a_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        load(MLP([2, 2]), tmp_path / "nowhere.npz")
