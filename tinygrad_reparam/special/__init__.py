"""Special functions in NumPy, one file per family, each docstring saying its method.

NumPy has no error function, no gamma-family functions beyond what ``math`` computes one float at
a time, and this library uses no SciPy at run time, so the few special functions the
distributions need are written here, vectorized: each family evaluated on arrays (NumPy in,
NumPy out), and the differentiable ones made engine primitives (Tensor in, Tensor out), each
forward line next to its vector-Jacobian product.
"""
from tinygrad_reparam.special.erf import erf, erf_array, erfc, erfc_array, ndtri, ndtri_array
from tinygrad_reparam.special.beta import (betainc, betainc_array, betaincc_array, lbeta, lbeta_array,
                                          student_t_cdf, student_t_cdf_array)

__all__ = [
    "erf", "erfc", "ndtri", "erf_array", "erfc_array", "ndtri_array",
    "lbeta", "betainc", "student_t_cdf", "lbeta_array", "betainc_array", "betaincc_array",
    "student_t_cdf_array",
]
