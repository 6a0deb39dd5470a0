"""The C kernels of ``swift_optim_zoo._native`` against float64 torch, on shapes that exercise every
remainder (rows not a multiple of 4, columns not a multiple of 16, one row), and the torch fallback."""

from __future__ import annotations

import warnings

import pytest
import torch

from swift_optim_zoo import _native

SHAPES = [(1, 5), (7, 37), (130, 33), (64, 48)]


@pytest.fixture
def built() -> None:
    """Skip only where no C compiler exists; with one, a kernel that fails to build is a failure."""
    if _native.find_compiler() is None:
        pytest.skip("no C compiler here: the kernels cannot be built (the torch fallback is tested below)")
    assert _native.library() is not None, _native._failure


def _matrix(shape: tuple[int, int], seed: int) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 3


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.usefixtures("built")
def test_square_sums_match_float64(shape: tuple[int, int], threads: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    grad, param = _matrix(shape, 0), _matrix(shape, 1)
    rows, cols, extra = _native.square_sums(grad, param)
    squared = grad.double() ** 2
    torch.testing.assert_close(rows.double(), squared.sum(1), rtol=1e-6, atol=0)
    torch.testing.assert_close(cols.double(), squared.sum(0), rtol=1e-6, atol=0)
    assert extra is not None and extra.dtype == torch.float32
    torch.testing.assert_close(extra.double(), (param.double() ** 2).sum(), rtol=1e-6, atol=0)
    assert _native.square_sums(grad)[2] is None


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.usefixtures("built")
def test_weighted_square_sum_matches_float64(shape: tuple[int, int], threads: int,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch, "get_num_threads", lambda: threads)
    grad = _matrix(shape, 2)
    row_w, col_w = torch.rand(shape[0]) + 0.1, torch.rand(shape[1]) + 0.1
    got = _native.weighted_square_sum(grad, row_w, col_w)
    expected = (row_w.double()[:, None] * grad.double() ** 2 * col_w.double()[None, :]).sum()
    torch.testing.assert_close(got.double(), expected, rtol=1e-6, atol=0)


@pytest.mark.usefixtures("built")
def test_thread_sums_add_in_thread_order(monkeypatch: pytest.MonkeyPatch) -> None:
    """The threads' partial sums are added in thread order, not in the order the threads finish (as an OpenMP
    reduction adds them), so one thread count gives the same bits on every run. One row per thread, partials
    2^53, 1, -2^53, 1: 1 in thread order (2^53 + 1 rounds to 2^53), 2 in most other orders."""
    monkeypatch.setattr(torch, "get_num_threads", lambda: 4)
    matrix = torch.tensor([[2.0**26], [1.0], [2.0**26], [1.0]])
    row_w, col_w = torch.tensor([2.0, 1.0, -2.0, 1.0]), torch.ones(1)
    assert {float(_native.weighted_square_sum(matrix, row_w, col_w)) for _ in range(200)} == {1.0}


@pytest.mark.parametrize("momentum", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.usefixtures("built")
def test_factored_write_matches_float64(shape: tuple[int, int], momentum: bool) -> None:
    param, grad = _matrix(shape, 3), _matrix(shape, 4)
    exp_avg = _matrix(shape, 5) if momentum else None
    row_s, col_s = torch.rand(shape[0]), torch.rand(shape[1])
    update = grad.double() * row_s.double()[:, None] * col_s.double()[None, :]
    expected_avg = None
    if exp_avg is not None:
        expected_avg = exp_avg.double() * 0.9 + update
        update = expected_avg
    expected = param.double() * 0.99 - update
    assert _native.factored_write(param, grad, row_s, col_s, decay=0.99, exp_avg=exp_avg, beta1=0.9)
    torch.testing.assert_close(param.double(), expected, rtol=1e-6, atol=1e-6)
    if exp_avg is not None:
        torch.testing.assert_close(exp_avg.double(), expected_avg, rtol=1e-6, atol=1e-6)


def test_other_tensors_take_torch() -> None:
    """float64, a non-contiguous view, bf16 extra: same sums through torch; the write declines."""
    grad = _matrix((6, 10), 6)
    for matrix in (grad.double(), grad.t()):
        rows, cols, extra = _native.square_sums(matrix, matrix.to(torch.bfloat16))
        torch.testing.assert_close(rows, (matrix * matrix).sum(1))
        torch.testing.assert_close(cols, (matrix * matrix).sum(0))
        assert extra is not None
    param = grad.double()
    before = param.clone()
    assert not _native.factored_write(param, grad.double(), torch.ones(6, dtype=torch.float64),
                                      torch.ones(10, dtype=torch.float64), decay=1.0, exp_avg=None, beta1=0.0)
    torch.testing.assert_close(param, before)


def test_shape_mismatches_say_what_was_expected() -> None:
    grad = _matrix((4, 5), 7)
    with pytest.raises(ValueError, match=r"expected weights of shapes \(4,\) and \(5,\), got \(5,\) and \(5,\)"):
        _native.weighted_square_sum(grad, torch.ones(5), torch.ones(5))
    with pytest.raises(ValueError, match=r"expected extra of shape \(4, 5\), got \(5, 4\)"):
        _native.square_sums(grad, torch.ones(5, 4))


def test_build_failure_warns_once_and_falls_back(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setattr(_native, "_library", None)
    monkeypatch.setattr(_native, "_failure", None)
    monkeypatch.setenv("SWIFT_ZOO_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CC", "definitely-not-a-compiler")
    monkeypatch.setattr(_native.shutil, "which", lambda name: None)
    grad = _matrix((5, 7), 8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = _native.square_sums(grad)
        _native.weighted_square_sum(grad, torch.ones(5), torch.ones(7))
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1, messages
    assert "native kernels could not be built (RuntimeError: no C compiler found" in messages[0]
    assert "use torch ops instead" in messages[0]
    torch.testing.assert_close(first[0], (grad * grad).sum(1))
    assert not _native.factored_write(grad.clone(), grad, torch.ones(5), torch.ones(7), decay=1.0, exp_avg=None,
                                      beta1=0.0)


@pytest.mark.usefixtures("built")
def test_builds_into_the_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    monkeypatch.setattr(_native, "_library", None)
    monkeypatch.setattr(_native, "_failure", None)
    monkeypatch.setenv("SWIFT_ZOO_CACHE_DIR", str(tmp_path))
    assert _native.library() is not None
    built = list(tmp_path.glob("native-kernels-*.so"))  # type: ignore[attr-defined]
    assert len(built) == 1
    assert _native.cache_dir() == tmp_path


@pytest.mark.usefixtures("built")
def test_build_without_openmp_gives_the_same_sums(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """A compiler without OpenMP (the second flag set) builds single-threaded kernels with the same results."""
    monkeypatch.setattr(_native, "_library", None)
    monkeypatch.setattr(_native, "_failure", None)
    monkeypatch.setattr(_native, "FLAG_SETS", (_native.FLAG_SETS[-1],))
    monkeypatch.setenv("SWIFT_ZOO_CACHE_DIR", str(tmp_path))
    assert "-fopenmp" not in _native.FLAG_SETS[0]
    grad = _matrix((130, 33), 9)
    rows, cols, _ = _native.square_sums(grad)
    squared = grad.double() ** 2
    torch.testing.assert_close(rows.double(), squared.sum(1), rtol=1e-6, atol=0)
    torch.testing.assert_close(cols.double(), squared.sum(0), rtol=1e-6, atol=0)
    weighted = _native.weighted_square_sum(grad, torch.ones(130), torch.ones(33))
    torch.testing.assert_close(weighted.double(), squared.sum(), rtol=1e-6, atol=0)


@pytest.mark.usefixtures("built")
def test_bf16_extra_keeps_the_matrix_native() -> None:
    """A bf16 parameter beside a float32 gradient: the gradient's sums still come from the C kernel
    (same values as with a float32 extra), the parameter's sum of squares from torch."""
    grad, param = _matrix((9, 20), 10), _matrix((9, 20), 11).to(torch.bfloat16)
    rows, cols, extra = _native.square_sums(grad, param)
    rows32, cols32, extra32 = _native.square_sums(grad, param.float())
    torch.testing.assert_close(rows, rows32, rtol=0, atol=0)
    torch.testing.assert_close(cols, cols32, rtol=0, atol=0)
    torch.testing.assert_close(extra, extra32, rtol=1e-6, atol=0)


@pytest.mark.usefixtures("built")
def test_a_step_builds_only_the_library_its_kernels_are_in(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    """A first fused Lion step compiles _native_kernels.c alone (the first-step cost); SGD's adds the element-wise
    library, AdamW8bit's the 8-bit one; each kernel name resolves to the one C file that defines it."""
    import swift_zoo

    monkeypatch.setattr(_native, "_library", None)
    monkeypatch.setattr(_native, "_failure", None)
    monkeypatch.setattr(_native, "_units", {})
    monkeypatch.setattr(_native, "_bound", {})
    monkeypatch.setenv("SWIFT_ZOO_CACHE_DIR", str(tmp_path))

    def built_units() -> list[str]:
        return sorted(path.name.split("-")[1] for path in tmp_path.glob("native-*.so"))  # type: ignore[attr-defined]

    for name, expected in (("lion", ["kernels"]), ("sgd", ["elementwise", "kernels"]),
                           ("adamw_8bit", ["adamw_8bit", "elementwise", "kernels"])):
        param = torch.nn.Parameter(torch.randn(64, 64))
        param.grad = torch.randn(64, 64)
        kwargs = {"min_8bit_size": 0, "block_size": 64} if name == "adamw_8bit" else {}
        swift_zoo.build_optimizer(name, [param], lr=1e-3, fused=True, **kwargs).step()
        assert built_units() == expected, name
    assert _native.unit_of("swift_lamb_f32") == "elementwise" and _native.unit_of("swift_encode_f32") == "adamw_8bit"
    with pytest.raises(LookupError, match=r"expected its definition in one of .* found \[\]"):
        _native.unit_of("swift_no_such_kernel")
