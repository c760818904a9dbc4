"""ebmlab.validation: every constraint accepts its boundary values and refuses the others, and
every refusal names the argument, what was expected and what was given."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from ebmlab.models.base import Model
from ebmlab.validation import (
    AnyOf,
    Boolean,
    ImageShape,
    Integral,
    InvalidArgumentError,
    OneOf,
    Real,
    SequenceOf,
    check_binary,
    check_choice,
    check_in_range,
    check_known_mask,
    check_nonnegative_int,
    check_params,
    check_positive,
    check_positive_int,
    validate,
)


def refusal(constraint, value, name: str = "arg") -> str:
    with pytest.raises(InvalidArgumentError) as caught:
        constraint.check(value, name)
    return str(caught.value)


# ----- each constraint: what it accepts, what it refuses, what it says ---------------------------
CASES = [
    # (constraint, description, accepted, refused)
    (Integral(1), "a positive integer", [1, 2, 10**12, np.int64(1), np.uint8(3)], [0, -1]),
    (Integral(0), "a non-negative integer", [0, 5, np.int32(0)], [-1]),
    (Integral(2), "an integer >= 2", [2, 3], [1, 0]),
    (Integral(0, closed="neither"), "a positive integer", [1], [0]),
    (Integral(1, 3), "an integer in [1, 3]", [1, 2, 3], [0, 4]),
    (Integral(1, 3, closed="neither"), "an integer in [2, 2]", [2], [1, 3]),
    (Integral(None, 3), "an integer <= 3", [3, -5], [4]),
    (Integral(), "an integer", [0, -7, np.int16(2)], []),
    (Real(0, closed="neither"), "a positive number", [1e-300, 1, 2.5, np.float32(0.1)], [0, -1e-9]),
    (Real(0), "a non-negative number", [0, 0.0, -0.0, 3, np.float64(0)], [-1e-12]),
    (Real(0, 1), "a number in [0, 1]", [0, 0.5, 1, np.float16(1)], [-0.01, 1.01]),
    (Real(0, 1, closed="left"), "a number in [0, 1)", [0, 0.999], [1, -0.1]),
    (Real(0, 1, closed="right"), "a number in (0, 1]", [1, 1e-9], [0, 1.5]),
    (Real(0, 0.5, closed="neither"), "a number in (0, 0.5)", [0.25], [0, 0.5]),
    (Real(2, closed="neither"), "a number > 2", [2.0001], [2]),
    (Real(None, 1), "a number <= 1", [1, -1e9], [1.1]),
    (Real(), "a finite number", [0, -1e300, 7, np.float32(-2)], [math.inf, -math.inf]),
    (Real(finite=False), "a number", [math.inf, -math.inf, 0], []),
    (OneOf("gated", "plain"), "one of gated, plain", ["gated", "plain", np.str_("plain")], ["x"]),
    (OneOf(1, 2), "one of 1, 2", [1, 2, np.int64(2)], [0, 3, "1"]),
    (OneOf(None, "a"), "one of None, a", [None, "a"], ["b", 0]),
    (Boolean(), "True or False", [True, False, np.bool_(True)], [0, 1, "True", None]),
    (Real(0, closed="neither") | None, "a positive number or None", [None, 1.0], [0, "x"]),
    (None | Integral(1), "None or a positive integer", [None, 3], [0]),
    (AnyOf(Integral(0), OneOf("auto")), "a non-negative integer or one of auto", [0, "auto"], [-1]),
    (
        SequenceOf(Integral(1)),
        "a list of positive integers",
        [[], [1], (2, 3), [np.int64(4)]],
        [[0], [1, -1], "12", 3, {1: 2}],
    ),
    (SequenceOf(Real(0, 1), 2), "a list of 2 numbers in [0, 1]", [[0, 1], (0.5, 0.5)], [[0.5]]),
    (
        ImageShape(),
        "[height, width] (positive integers)",
        [[1, 1], (28, 28), [np.int64(8), 8]],
        [[28], [0, 3], [2, 2, 2], [2.0, 2], "ab"],
    ),
    (
        ImageShape(min_pixels=2),
        "[height, width] (positive integers) with >= 2 pixels",
        [[1, 2]],
        [[1, 1]],
    ),
    (
        Integral(1).where(lambda k: k % 2 == 1, "an odd kernel size"),
        "an odd kernel size",
        [1, 3, 7],
        [2, 0, -1],
    ),
]


@pytest.mark.parametrize(("constraint", "description", "accepted", "refused"), CASES)
def test_constraint_accepts_and_refuses(constraint, description, accepted, refused) -> None:
    assert constraint.description == description
    for value in accepted:
        assert constraint.check(value, "arg") is value
    for value in refused:
        message = refusal(constraint, value, "my_arg")
        shown = repr(value.item() if isinstance(value, np.generic) else value)
        assert message == f"my_arg: expected {description}, got {shown}"


@pytest.mark.parametrize("constraint", [Integral(), Integral(0), Real(), Real(0), Real(0, 1)])
@pytest.mark.parametrize("flag", [True, False, np.bool_(True)])
def test_bool_is_neither_an_integer_nor_a_number(constraint, flag) -> None:
    assert not constraint.accepts(flag)


@pytest.mark.parametrize("constraint", [Integral(), Real(finite=False), Real(0), OneOf(1, 2.5)])
@pytest.mark.parametrize("value", [math.nan, np.float32("nan"), "1", None, [1], torch.tensor(1)])
def test_not_numbers_are_refused(constraint, value) -> None:
    assert not constraint.accepts(value)


@pytest.mark.parametrize("value", [1.0, 2.5, np.float64(3.0), "3"])
def test_an_integral_refuses_floats_and_strings(value) -> None:
    assert not Integral().accepts(value)


def test_real_accepts_integers_and_numpy_scalars_of_every_width() -> None:
    for value in (3, np.int8(3), np.uint64(3), np.float16(3), np.float32(3), np.float64(3)):
        assert Real(0, closed="neither").accepts(value)


def test_numpy_scalars_are_shown_as_python_numbers() -> None:
    assert refusal(Integral(1), np.int64(0), "n") == "n: expected a positive integer, got 0"
    assert refusal(Real(1), np.float32(0.5), "x") == "x: expected a number >= 1, got 0.5"


def test_refusals_are_value_and_type_errors() -> None:
    for error in (ValueError, TypeError):
        with pytest.raises(error, match="k: expected a positive integer, got 'one'"):
            check_positive_int("one", "k")


def test_bad_intervals_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="closed"):
        Real(0, 1, closed="open")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="low <= high"):
        Integral(3, 1)
    with pytest.raises(ValueError, match="at least one"):
        OneOf()


def test_every_public_constraint_has_a_readable_repr() -> None:
    assert repr(Integral(1)) == "<Integral: a positive integer>"


# ----- single-value helpers ----------------------------------------------------------------------
def test_single_value_helpers_return_the_value() -> None:
    assert check_positive_int(np.int64(3), "n") == 3
    assert check_nonnegative_int(0, "n") == 0
    assert check_positive(0.5, "lr") == 0.5
    assert check_in_range(1, "p", 0, 1) == 1
    assert check_in_range(0, "p", 0, 1, closed="left") == 0
    assert check_choice("b", "kind", ("a", "b")) == "b"


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: check_positive_int(0, "n"), "n: expected a positive integer, got 0"),
        (lambda: check_positive_int(True, "n"), "n: expected a positive integer, got True"),
        (lambda: check_nonnegative_int(-1, "n"), "n: expected a non-negative integer, got -1"),
        (lambda: check_positive(0.0, "lr"), "lr: expected a positive number, got 0.0"),
        (lambda: check_positive(math.inf, "lr"), "lr: expected a positive number, got inf"),
        (lambda: check_in_range(1, "p", 0, 1, "left"), "p: expected a number in [0, 1), got 1"),
        (lambda: check_choice("c", "kind", ("a", "b")), "kind: expected one of a, b, got 'c'"),
    ],
)
def test_single_value_helpers_refuse(call, message) -> None:
    with pytest.raises(InvalidArgumentError, match=re.escape(message)):
        call()


def test_check_params_checks_every_named_value_in_order() -> None:
    constraints = {"a": Integral(1), "b": Real(0)}
    check_params(constraints, {"a": 1, "b": 0.0, "unchecked": object()})
    with pytest.raises(InvalidArgumentError, match=r"^a: "):
        check_params(constraints, {"a": 0, "b": -1})
    with pytest.raises(InvalidArgumentError, match=r"^b: expected a non-negative number, got -1$"):
        check_params(constraints, {"a": 1, "b": -1})


# ----- the decorator -----------------------------------------------------------------------------
def test_validate_checks_before_the_body_runs() -> None:
    calls = []

    @validate(n=Integral(1), p=Real(0, 1))
    def draw(n: int, p: float = 0.5) -> int:
        calls.append(n)
        return n

    assert draw(2) == 2 and draw(n=3, p=1) == 3
    with pytest.raises(InvalidArgumentError, match="n: expected a positive integer, got 0"):
        draw(0)
    with pytest.raises(InvalidArgumentError, match=r"p: expected a number in \[0, 1\], got 2"):
        draw(1, 2)
    assert calls == [2, 3]
    assert dict(draw.constraints) == {"n": draw.constraints["n"], "p": draw.constraints["p"]}


def test_validate_checks_defaults_and_keeps_the_signature() -> None:
    @validate(k=Integral(1))
    def f(k: int = 0) -> int:
        """Doc."""
        return k

    with pytest.raises(InvalidArgumentError, match="k: "):
        f()
    assert f.__doc__ == "Doc." and list(__import__("inspect").signature(f).parameters) == ["k"]


def test_validate_refuses_a_name_the_function_lacks() -> None:
    with pytest.raises(TypeError, match="no argument 'q'"):

        @validate(q=Integral())
        def f(k: int) -> int:
            return k


class _Toy(Model):
    @validate(size=Integral(1), rate=Real(0, closed="neither"), kind=OneOf("a", "b"))
    def __init__(self, size: int, rate: float = 1.0, kind: str = "a") -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(size))


def test_a_validated_model_records_a_json_safe_config() -> None:
    model = _Toy(np.int64(3), rate=np.float32(0.5))
    assert model.config == {"size": 3, "rate": 0.5, "kind": "a"}
    assert type(model.config["size"]) is int and type(model.config["rate"]) is float
    with pytest.raises(InvalidArgumentError, match="size: expected a positive integer, got 0"):
        _Toy(0)
    with pytest.raises(InvalidArgumentError, match="kind: expected one of a, b, got 'c'"):
        _Toy(2, kind="c")


def test_an_argument_error_is_not_masked_by_the_config_record() -> None:
    with pytest.raises(InvalidArgumentError, match="size: expected a positive integer"):
        _Toy(torch.tensor(2))  # a tensor is not an integer, nor JSON-safe


# ----- inputs ------------------------------------------------------------------------------------
def test_check_known_mask() -> None:
    x = torch.zeros(2, 3)
    assert check_known_mask(torch.tensor([True, False, True]), x).shape == (3,)
    assert check_known_mask(torch.ones(2, 3, dtype=torch.bool), x).shape == (2, 3)
    with pytest.raises(TypeError, match="mask: expected a bool tensor"):
        check_known_mask(torch.ones(3), x)
    with pytest.raises(ValueError, match=r"mask: expected shape \(3,\) or \(2, 3\), got \(4,\)"):
        check_known_mask(torch.ones(4, dtype=torch.bool), x)


@pytest.mark.parametrize(
    "value", [0.5, 1 - 2**-24, 1 + 2**-23, 2**-149, -1.0, 2.0, 1e30, math.nan, math.inf, -math.inf]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_check_binary_refuses_any_other_value_in_any_piece(monkeypatch, value, dtype):
    """The piecewise test x (x - 1) == 0 passes 0, -0 and 1 only, wherever the odd value lies
    (first piece, a later one, the short last one; a transposed view)."""
    from ebmlab import validation

    monkeypatch.setattr(validation, "_BINARY_PIECE", 64)
    x = (torch.rand(30, 17, generator=torch.Generator().manual_seed(0)) < 0.5).to(dtype)
    x[0, 0] = -0.0
    check_binary(x, "x")
    check_binary(x.T, "x")
    check_binary(x.clone().requires_grad_(), "x")  # a tensor in a graph is read, not traced
    for row, col in [(0, 1), (10, 3), (29, 16)]:
        bad = x.clone()
        bad[row, col] = value
        with pytest.raises(ValueError, match="x: a Bernoulli model needs binary data"):
            check_binary(bad, "x")
        with pytest.raises(ValueError, match="x: a Bernoulli model needs binary data"):
            check_binary(bad.T, "x")


# ----- generators ---------------------------------------------------------------------------------
def test_as_generator_takes_a_generator_a_seed_or_none():
    from ebmlab.validation import as_generator

    g = torch.Generator()
    assert as_generator(g) is g and as_generator(None) is None
    a, b = as_generator(7), as_generator(np.int64(7))
    assert torch.equal(torch.rand(3, generator=a), torch.rand(3, generator=b))
    for bad in (True, 2.5, "0", np.random.default_rng(0)):
        with pytest.raises(InvalidArgumentError, match=r"^rng: expected a torch.Generator, an "):
            as_generator(bad, name="rng")


def test_make_generator_refuses_a_seed_that_is_not_an_integer():
    from ebmlab.samplers.base import make_generator

    assert make_generator(None, "cpu").device.type == "cpu"
    for bad in (2.5, True, "a"):
        with pytest.raises(InvalidArgumentError, match=r"^seed: expected"):
            make_generator(bad, "cpu")


# ----- instances and devices ----------------------------------------------------------------------
def test_instance_of_names_the_types_and_combines_with_none():
    from ebmlab.validation import InstanceOf

    constraint = InstanceOf((int, str)) | None
    for good in (3, "a", None):
        constraint.check(good, "x")
    with pytest.raises(InvalidArgumentError, match=r"^x: expected an int or str or None, got"):
        constraint.check(2.5, "x")
    named = InstanceOf(torch.Generator, description="a torch.Generator")
    with pytest.raises(InvalidArgumentError, match=r"^g: expected a torch.Generator, got 0"):
        named.check(0, "g")


def test_resolve_device_takes_names_and_devices_this_machine_has():
    from ebmlab.validation import resolve_device

    assert resolve_device("cpu") == torch.device("cpu") == resolve_device(torch.device("cpu"))
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(InvalidArgumentError, match=r"^where: expected auto, cpu, cuda or mps"):
        resolve_device("gpu", "where")
    with pytest.raises(InvalidArgumentError, match=r"^device: expected auto, cpu, cuda or mps"):
        resolve_device(0)
    if not torch.cuda.is_available():
        with pytest.raises(InvalidArgumentError, match="no CUDA device is available"):
            resolve_device("cuda:1")
