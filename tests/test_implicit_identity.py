"""The implicit reparameterization identity, checked for every univariate family that has one.

For a continuous distribution with CDF F(z; theta), a draw that keeps its quantile F(z; theta) as
theta moves has dz/dtheta = -(dF/dtheta) / p(z; theta). ``testing.check_pathwise_gradient`` checks
any ``rsample`` against that identity (and the law of its draws against ``cdf``), using nothing but
the distribution's own ``cdf`` and ``log_prob``. Here it runs over ``TABLE``: one row per family
that has ``rsample`` and ``cdf``, with the parameters to try. ``NOT_IN_TABLE`` lists the families
whose rows are still to be written, with the reason; ``test_the_table_covers_every_family`` fails
when a new family appears in neither.

Then the helper's own guarantees: it catches a wrong ``rsample`` (a wrong gradient, with a message
naming the parameter, the draw and both numbers; wrong draws moved the right way, which the
identity cannot see, by the law check), the Rayleigh example in its docstring and in the README
runs as written, and bad arguments get errors that say what to pass instead.

To add a family: one ``Row(name, factory, parameters)``; ``factory(**parameters)`` builds it (a
class, or a function whose argument names are the parameters to check), and the values may be
arrays, so one row checks a whole batch.
"""
import re
import textwrap
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np
import pytest

import tinygrad_reparam.distributions as D
from tinygrad_reparam import Tensor, testing
from tinygrad_reparam.distributions import gamma as gamma_module, transforms as T
from tinygrad_reparam.random import get_rng
from tinygrad_reparam.testing import check_pathwise_gradient

README = Path(__file__).resolve().parent.parent / "README.md"


class Row(NamedTuple):
    name: str             # the class name of what factory builds
    factory: Callable     # factory(**parameters) -> the distribution
    parameters: dict      # parameter name -> value (number or array: a batch)


TABLE = [
    # location-scale families: the identity reduces to dz/dloc = 1, dz/dscale = eps
    Row("Normal", D.Normal, {"loc": [0.5, -3.0], "scale": [2.0, 0.1]}),
    Row("Laplace", D.Laplace, {"loc": -1.0, "scale": [1.5, 0.2]}),
    Row("Logistic", D.Logistic, {"loc": [2.0, 0.0], "scale": 0.7}),
    Row("Gumbel", D.Gumbel, {"loc": 0.3, "scale": [1.2, 5.0]}),
    Row("Uniform", D.Uniform, {"low": [-1.0, 0.0], "high": [2.5, 0.25]}),
    # a Normal through a fixed map
    Row("LogNormal", D.LogNormal, {"loc": [0.2, -1.0], "scale": [0.6, 1.5]}),
    Row("TanhNormal", D.TanhNormal, {"loc": [0.4, -2.0], "scale": [0.8, 0.3]}),
    Row("TransformedDistribution",
        lambda loc, scale, shift: D.TransformedDistribution(
            D.Normal(loc, scale), [T.AffineTransform(shift, 1.5), T.SigmoidTransform()]),
        {"loc": [0.1, 1.0], "scale": 0.9, "shift": [-0.3, 2.0]}),
    # implicit gradients: the Gamma family (series, continued fraction and Temme's expansion)
    Row("Gamma", D.Gamma, {"concentration": [0.05, 0.7, 3.0, 150.0, 2000.0],
                           "rate": [2.0, 1.0, 0.5, 3.0, 1.0]}),
    Row("Exponential", D.Exponential, {"rate": [0.3, 4.0]}),
    Row("Chi2", D.Chi2, {"df": [0.5, 3.0, 40.0]}),
    # a Gamma pushed through a decreasing map: the implicit gradient composes with transforms
    Row("TransformedDistribution",
        lambda concentration, shift: D.TransformedDistribution(
            D.Gamma(concentration, 1.0), T.AffineTransform(shift, -2.0)),
        {"concentration": [0.3, 4.0], "shift": 1.0}),
    # the Concrete relaxation of a Bernoulli
    Row("RelaxedBernoulli", lambda temperature, logits: D.RelaxedBernoulli(temperature, logits=logits),
        {"temperature": [0.6, 2.0], "logits": [-0.8, 1.5]}),
]

NOT_IN_TABLE = {  # families with rsample and cdf whose rows are still to be written, and why
    "Beta": "its row belongs with the Beta/Dirichlet/StudentT work of issue 12, still in progress",
    "StudentT": "its row belongs with the Beta/Dirichlet/StudentT work of issue 12, still in progress",
}


@pytest.mark.parametrize("row", TABLE, ids=lambda row: f"{row.name}({', '.join(row.parameters)})")
def test_every_family_passes_the_check(row):
    assert type(row.factory(**row.parameters)).__name__ == row.name
    assert check_pathwise_gradient(row.factory, row.parameters, rng=np.random.default_rng(0))


def test_the_table_covers_every_family():
    """Every family exported by ``distributions`` that has rsample and cdf is in TABLE or in
    NOT_IN_TABLE (multivariate families have no cdf, so they are not asked for)."""
    eligible = {name for name in D.__all__
                if isinstance(getattr(D, name), type) and issubclass(getattr(D, name), D.Distribution)
                and getattr(D, name).has_rsample is not False
                and callable(getattr(getattr(D, name), "cdf", None))}
    in_table = {row.name for row in TABLE}
    assert eligible - in_table - set(NOT_IN_TABLE) == set(), "families with rsample and cdf but no row"
    assert in_table & set(NOT_IN_TABLE) == set(), "families with a row that NOT_IN_TABLE still lists"


# --- it catches a wrong rsample ----------------------------------------------------------------------
class NormalWithWrongGradient(D.Normal):
    """Draws the right values, z = loc + scale * eps, but its gradient in scale is 1.01 eps."""

    def rsample(self, sample_shape=(), rng=None):
        eps = Tensor(get_rng(rng).standard_normal(self._extended_shape(sample_shape)))
        return self.loc + (1.01 * self.scale - (0.01 * self.scale).detach()) * eps


class NormalWithWrongScale(D.Normal):
    """z = loc + 1.01 * scale * eps: draws from N(loc, 1.01 scale), each moved the right way."""

    def rsample(self, sample_shape=(), rng=None):
        eps = Tensor(get_rng(rng).standard_normal(self._extended_shape(sample_shape)))
        return self.loc + 1.01 * self.scale * eps


def test_a_wrong_gradient_fails_with_the_parameter_the_draw_and_both_numbers():
    with pytest.raises(AssertionError) as error:
        check_pathwise_gradient(NormalWithWrongGradient, {"loc": 0.5, "scale": 2.0}, rng=np.random.default_rng(0))
    message = str(error.value)
    found = re.search(r"parameter 'scale', sample z\[(\d+)\] = (\S+) \(where scale = 2\.0\): rsample's "
                      r"pathwise dz/dscale = (\S+), but the implicit identity -\(dF/dscale\) / p gives (\S+) ",
                      message)
    assert found, message
    z, pathwise, implicit = (float(found.group(k)) for k in (2, 3, 4))
    eps = (z - 0.5) / 2.0  # the noise behind the draw named in the message
    assert pathwise == pytest.approx(1.01 * eps, rel=1e-12) and implicit == pytest.approx(eps, rel=1e-6)
    assert "64 of the 64 samples checked (of 64) differ" in message


def test_wrong_draws_moved_the_right_way_pass_the_identity_but_not_the_law_check():
    """loc + 1.01 * scale * eps keeps its quantile Phi(1.01 eps) fixed as loc and scale move, so the
    identity holds exactly; only the law of the draws tells. A 1% error takes a million of them."""
    parameters = {"loc": 0.5, "scale": 2.0}
    assert check_pathwise_gradient(NormalWithWrongScale, parameters, rng=np.random.default_rng(0), law_samples=0)
    with pytest.raises(AssertionError, match=r"rsample's draws do not follow NormalWithWrongScale's own cdf: "
                                             r"over 1000000 draws.*mean\(\(u - 1/2\)\^2\) = 0\.08[4-9]"):
        check_pathwise_gradient(NormalWithWrongScale, parameters, rng=np.random.default_rng(0),
                                law_samples=10**6)
    assert check_pathwise_gradient(D.Normal, parameters, rng=np.random.default_rng(0), law_samples=10**6)


class ShiftedNormal(D.Normal):
    """z = loc + scale (eps + 0.02): draws from N(loc + 0.02 scale, scale), each with its quantile
    Phi(eps + 0.02) fixed as loc and scale move, so the derivatives are right for those draws.
    (A shift by a constant, loc + scale eps + 0.02, the identity catches: dz/dscale is eps there,
    but the quantile Phi(eps + 0.02 / scale) would need eps + 0.02 / scale.)"""

    def rsample(self, sample_shape=(), rng=None):
        return super().rsample(sample_shape, rng) + 0.02 * self.scale


def test_the_law_check_sees_a_shifted_sampler_with_the_default_draws():
    with pytest.raises(AssertionError, match=r"over 200000 draws, .*mean\(u\) = 0\.50[4-9]"):
        check_pathwise_gradient(ShiftedNormal, {"loc": 0.0, "scale": 1.0}, rng=np.random.default_rng(1))


def test_a_gamma_with_its_implicit_gradient_off_by_a_thousandth_fails(monkeypatch):
    right = gamma_module.gamma_sample_derivative_array
    monkeypatch.setattr(gamma_module, "gamma_sample_derivative_array", lambda a, z: 1.001 * right(a, z))
    with pytest.raises(AssertionError, match=r"parameter 'concentration', sample z\[\d+, \d\] = "):
        check_pathwise_gradient(D.Gamma, {"concentration": [0.05, 3.0, 2000.0], "rate": 1.0},
                                rng=np.random.default_rng(0), law_samples=0)


# --- the Rayleigh example, in the docstring and in the README ------------------------------------------
def rayleigh_example(source: str) -> dict:
    """Run an example and return its names (numpy, distributions, Tensor, get_rng and the helper are
    there already, as the docstring's example assumes)."""
    names = {"np": np, "D": D, "Tensor": Tensor, "get_rng": get_rng,
             "check_pathwise_gradient": check_pathwise_gradient}
    exec(compile(source, "<example>", "exec"), names)  # noqa: S102 (our own documentation)
    return names


def docstring_example() -> str:
    doc = testing.check_pathwise_gradient.__doc__
    block = doc[doc.index("class Rayleigh"):doc.index("check_pathwise_gradient(Rayleigh")]
    return textwrap.dedent("        " + block)


def readme_example() -> str:
    text = README.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    (block,) = [b for b in blocks if "class Rayleigh" in b]
    return block


@pytest.mark.parametrize("source", [docstring_example, readme_example], ids=["docstring", "README"])
def test_the_rayleigh_example_runs_as_written_and_passes(source):
    names = rayleigh_example(source())
    assert check_pathwise_gradient(names["Rayleigh"], {"scale": 2.0}, rng=np.random.default_rng(0))
    assert check_pathwise_gradient(names["Rayleigh"], {"scale": [0.1, 30.0]}, rng=np.random.default_rng(1))


@pytest.mark.parametrize("source", [docstring_example, readme_example], ids=["docstring", "README"])
def test_the_rayleigh_example_fails_when_broken_as_its_comment_says(source):
    code = source().replace('print(check_pathwise_gradient(Rayleigh, {"scale": 2.0}))', "")  # (the README's)
    assert "self.scale * Tensor(" in code
    wrong_gradient = rayleigh_example(code.replace("self.scale * Tensor(", "self.scale ** 1.01 * Tensor("))
    with pytest.raises(AssertionError, match=r"parameter 'scale', sample z\[\d+\] = .*dz/dscale = "):
        check_pathwise_gradient(wrong_gradient["Rayleigh"], {"scale": 2.0}, rng=np.random.default_rng(0))
    wrong_draws = rayleigh_example(code.replace("self.scale * Tensor(", "1.1 * self.scale * Tensor("))
    with pytest.raises(AssertionError, match=r"rsample's draws do not follow Rayleigh's own cdf"):
        check_pathwise_gradient(wrong_draws["Rayleigh"], {"scale": 2.0}, rng=np.random.default_rng(0))


def test_the_readme_example_prints_true():
    code = readme_example()
    assert "print(check_pathwise_gradient(Rayleigh, {\"scale\": 2.0}))" in code
    printed = []
    names = {"print": printed.append}
    exec(compile(code, "README.md", "exec"), names)  # noqa: S102 (our own documentation)
    assert printed == [True]


# --- bad arguments --------------------------------------------------------------------------------
NORMAL = {"loc": 0.0, "scale": 1.0}
BAD_ARGUMENTS = [
    ("not callable", lambda: check_pathwise_gradient("Normal", NORMAL), TypeError,
     r"make_distribution must be callable .*got str"),
    ("parameters a list", lambda: check_pathwise_gradient(D.Normal, [0.0, 1.0]), TypeError,
     r"parameters must be a non-empty dict from parameter names to values, e\.g\. \{'loc': 0\.0"),
    ("parameters empty", lambda: check_pathwise_gradient(D.Normal, {}), TypeError, r"non-empty dict"),
    ("a name the factory does not take", lambda: check_pathwise_gradient(D.Normal, {"mean": 0.0, "scale": 1.0}),
     TypeError, r"parameters named \['mean', 'scale'\] failed: .*unexpected keyword argument 'mean'\. The "
                r"keys of parameters must be the argument names of make_distribution"),
    ("a missing name", lambda: check_pathwise_gradient(D.Normal, {"loc": 0.0}), TypeError,
     r"parameters named \['loc'\] failed: .*missing 1 required positional argument: 'scale'"),
    ("a value out of range", lambda: check_pathwise_gradient(D.Normal, {"loc": 0.0, "scale": -1.0}),
     ValueError, r"Normal: parameter scale must be positive"),
    ("a string value", lambda: check_pathwise_gradient(D.Normal, {"loc": "a", "scale": 1.0}), TypeError,
     r"check_pathwise_gradient: parameter loc: expected real numbers"),
    ("rtol < 0", lambda: check_pathwise_gradient(D.Normal, NORMAL, rtol=-1.0), ValueError,
     r"check_pathwise_gradient: rtol must be in \[0\.0, inf\]"),
    ("step 0", lambda: check_pathwise_gradient(D.Normal, NORMAL, step=0.0), ValueError,
     r"check_pathwise_gradient: step must be in \(0\.0, inf\]"),
    ("law_samples -1", lambda: check_pathwise_gradient(D.Normal, NORMAL, law_samples=-1), ValueError,
     r"check_pathwise_gradient: law_samples must be a non-negative integer"),
    ("sample_shape -3", lambda: check_pathwise_gradient(D.Normal, NORMAL, sample_shape=-3), ValueError,
     r"sample_shape must not contain negative sizes"),
    ("rng an int", lambda: check_pathwise_gradient(D.Normal, NORMAL, rng=5), TypeError,
     r"rng must be a numpy\.random\.Generator"),
    ("no rsample", lambda: check_pathwise_gradient(lambda probs: D.Bernoulli(probs=probs), {"probs": 0.3}),
     TypeError, r"Bernoulli has no rsample\(\), so there is no pathwise gradient to check"),
    ("multivariate", lambda: check_pathwise_gradient(lambda loc: D.MultivariateNormal(loc, np.eye(2)),
                                                     {"loc": np.zeros(2)}),
     ValueError, r"MultivariateNormal has event shape \(2,\); the check needs a univariate family"),
    ("no cdf", lambda: check_pathwise_gradient(lambda loc: D.Independent(D.Normal(loc, 1.0), 0), {"loc": 0.0}),
     TypeError, r"Independent has no cdf\(value\)"),
    ("step too large", lambda: check_pathwise_gradient(D.Uniform, {"low": 0.0, "high": 1e-6}, step=1.0),
     ValueError, r"moving parameter 'low' by the central difference's step left its allowed values .*"
                 r"pass a smaller step"),
]


@pytest.mark.parametrize("call, error, match", [pytest.param(*case[1:], id=case[0]) for case in BAD_ARGUMENTS])
def test_bad_arguments_say_what_to_pass_instead(call, error, match):
    with pytest.raises(error, match=match):
        call()
