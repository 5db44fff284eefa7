"""Kubernetes resource quantities (`1.5Gi`, `250m`, `1e3`), parsed by the API's own grammar so requests and limits
compare as the API server compares them, without importing a Kubernetes client (which costs preview time).

kubernetes/kubernetes `staging/src/k8s.io/apimachinery/pkg/api/resource/quantity.go` (`Quantity`, `ParseQuantity`):

    <quantity>        ::= <signedNumber><suffix>
    <number>          ::= <digits> | <digits>.<digits> | <digits>. | .<digits>
    <signedNumber>    ::= <number> | <sign><number>
    <suffix>          ::= <binarySI> | <decimalExponent> | <decimalSI>
    <binarySI>        ::= Ki | Mi | Gi | Ti | Pi | Ei
    <decimalSI>       ::= n | u | m | "" | k | M | G | T | P | E      (n and u: `suffix.go` `newSuffixer`)
    <decimalExponent> ::= "e" <signedNumber> | "E" <signedNumber>
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

_BINARY_SI = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_SI = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_QUANTITY = re.compile(
    r"(?P<sign>[+-]?)(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<exponent>[eE][+-]?[0-9]+)|(?P<suffix>[KMGTPE]i|[numkMGTPE]?))"
)
# `ParseQuantity` rounds every non-zero value up to a whole nano and caps binary quantities at 2^63-1.
_NANO = Fraction(1, 10**9)
_MAX_BINARY = Fraction(2**63 - 1)
# The API accepts exponents up to int32 (`suffix.go` `interpret`); beyond the E suffix's 10^18 no resource makes
# sense and the exact value would be huge, so this parser refuses them (stricter than the API server, never kinder).
_MAX_EXPONENT = 18
GRAMMAR = "a Kubernetes quantity such as 250m, 0.5, 128Mi, 1Gi or 1e3"


class QuantityError(ValueError):
    pass


def parse_quantity(text: str) -> Fraction:
    """The exact value of a quantity (bytes or cores), as the API server stores it; QuantityError if malformed."""
    match = _QUANTITY.fullmatch(text)
    if not match:
        raise QuantityError(f"{text!r} is not {GRAMMAR}")
    magnitude = Fraction(match["number"] + ("0" if match["number"].endswith(".") else ""))
    if match["exponent"]:
        exponent = int(match["exponent"][1:])
        if abs(exponent) > _MAX_EXPONENT:
            raise QuantityError(f"{text!r}: exponent beyond ±{_MAX_EXPONENT} (write it with a suffix such as Gi)")
        magnitude *= Fraction(10) ** exponent
    elif match["suffix"] in _BINARY_SI:
        magnitude = min(magnitude * 2 ** _BINARY_SI[match["suffix"]], _MAX_BINARY)
    else:
        magnitude *= Fraction(10) ** _DECIMAL_SI[match["suffix"]]
    magnitude = math.ceil(magnitude / _NANO) * _NANO
    return -magnitude if match["sign"] == "-" else magnitude
