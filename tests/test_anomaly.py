"""detect_anomaly(): the first NaN or inf, forward or backward, is reported where it was made."""
import numpy as np
import pytest

import tinygrad_reparam as tr
from tinygrad_reparam import AnomalyError, Tensor, detect_anomaly


def test_forward_nan_names_the_op_shapes_and_the_users_line():
    x = Tensor([1.0, -1.0], requires_grad=True)
    with np.errstate(invalid="ignore"), detect_anomaly():
        y = x * 2.0
        with pytest.raises(AnomalyError) as error:
            y.log()  # <- the line the error must point at
    message = str(error.value)
    assert "'log'" in message and "1 NaN" in message and "(2,)" in message
    assert "test_anomaly.py" in message and "y.log()" in message


def test_backward_inf_names_the_op_whose_vjp_made_it():
    x = Tensor([4.0, 0.0], requires_grad=True)
    with np.errstate(divide="ignore"), detect_anomaly():
        root = x.sqrt()  # forward is finite (sqrt(0) = 0); its derivative at 0 is infinite
        loss = (root * 3.0).sum()
        with pytest.raises(AnomalyError) as error:
            loss.backward()
    message = str(error.value)
    assert "backward pass of 'pow'" in message and "input #0" in message
    assert "root = x.sqrt()" in message
    assert x.grad is None


def test_silent_when_everything_is_finite_and_off_by_default():
    x = Tensor([0.5, 2.0], requires_grad=True)
    with detect_anomaly():
        (x.log() * x).sum().backward()
    np.testing.assert_allclose(x.grad, np.log(x.data) + 1.0)
    with np.errstate(divide="ignore"):
        y = Tensor([0.0], requires_grad=True).log()  # no error outside detect_anomaly
    assert y.data[0] == -np.inf and y.created_at is None


def test_mode_is_restored_after_an_error_and_works_as_decorator():
    with pytest.raises(AnomalyError), np.errstate(divide="ignore"):
        with detect_anomaly():
            Tensor([0.0], requires_grad=True).log()
    assert not tr.anomaly.is_anomaly_enabled()

    @detect_anomaly()
    def broken(x):
        return x / 0.0

    with pytest.raises(AnomalyError, match="'div'"), np.errstate(divide="ignore"):
        broken(Tensor([1.0], requires_grad=True))
    assert not tr.anomaly.is_anomaly_enabled()
