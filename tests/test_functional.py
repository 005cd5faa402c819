"""attend(): every available backend equals the einsum reference."""
import pytest
import torch

from tucker_lab import reference
from tucker_lab.functional import attend, backend, causal_mask, flash_available, fold_groups

F64 = torch.float64


def per_head_reference(q, k, v, scale, causal):
    """Expand KV heads explicitly (head h reads KV head h // (H/G)), then plain softmax."""
    H, G = q.shape[2], k.shape[2]
    idx = [h * G // H for h in range(H)]
    qh, kh, vh = q.transpose(1, 2), k[:, :, idx].transpose(1, 2), v[:, :, idx].transpose(1, 2)
    T, S = q.shape[1], k.shape[1]
    logits = qh @ kh.transpose(-1, -2) * scale
    if causal:
        logits = logits.masked_fill(~causal_mask(T, S), float("-inf"))
    return (torch.softmax(logits, -1) @ vh).transpose(1, 2)


@pytest.mark.parametrize("impl", ["sdpa", "einsum", "auto"])
@pytest.mark.parametrize("H,G", [(4, 4), (6, 2), (5, 1)])
@pytest.mark.parametrize("T,S", [(7, 7), (1, 9), (3, 10)])
@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("E,F", [(8, 8), (6, 5)])
def test_backends_equal_reference(impl, H, G, T, S, causal, E, F):
    q = torch.randn(2, T, H, E, dtype=F64)
    k, v = torch.randn(2, S, G, E, dtype=F64), torch.randn(2, S, G, F, dtype=F64)
    y = attend(q, k, v, scale=0.37, causal=causal, impl=impl)
    torch.testing.assert_close(y, per_head_reference(q, k, v, 0.37, causal), rtol=0, atol=1e-12)


# fold_groups' cases, as its docstring lists them: (T, S, causal, key_mask)
FOLD_CASES = {"decode step": (1, 9, True, False), "chunk after a cache": (3, 10, True, False),
              "bidirectional": (4, 6, False, False), "static key mask": (1, 9, False, True)}


@pytest.mark.parametrize("case", FOLD_CASES)
@pytest.mark.parametrize("impl", ["sdpa", "einsum"])
def test_fold_groups_equals_per_head_attention(case, impl):
    T, S, causal, masked = FOLD_CASES[case]
    H, G, E, F = 6, 2, 8, 5
    q = torch.randn(2, T, H, E, dtype=F64)
    k, v = torch.randn(2, S, G, E, dtype=F64), torch.randn(2, S, G, F, dtype=F64)
    key_mask = torch.arange(S) <= 4 if masked else None
    y = fold_groups(q, k, v, scale=0.37, causal=causal, impl=impl, key_mask=key_mask)
    if masked:  # the first 5 slots filled: the same as attending to those alone
        ref = per_head_reference(q, k[:, :5], v[:, :5], 0.37, False)
    else:
        ref = per_head_reference(q, k, v, 0.37, causal)
    torch.testing.assert_close(y, ref, rtol=0, atol=1e-12)
    if not masked:  # and the unfolded backend call gives the same
        unfolded = backend(q, k, v, scale=0.37, causal=causal, impl=impl)
        torch.testing.assert_close(y, unfolded, rtol=0, atol=1e-12)
        torch.testing.assert_close(attend(q, k, v, scale=0.37, causal=causal, impl=impl), y, rtol=0, atol=0)


def test_key_mask_checked():
    q = torch.randn(1, 1, 4, 8)
    kv = torch.randn(1, 5, 2, 8)
    with pytest.raises(ValueError, match=r"key_mask must be a bool tensor of shape \(S,\) = \(5,\)"):
        attend(q, kv, kv, scale=1.0, causal=False, key_mask=torch.ones(4, dtype=torch.bool))
    with pytest.raises(ValueError, match="key_mask must be a bool"):
        attend(q, kv, kv, scale=1.0, causal=False, key_mask=torch.ones(5))
    with pytest.raises(ValueError, match="key_mask replaces the causal mask"):
        attend(q, kv, kv, scale=1.0, causal=True, key_mask=torch.ones(5, dtype=torch.bool))
    with pytest.raises(ValueError, match="flash-attn takes no mask"):
        backend(q, kv, kv, scale=1.0, causal=False, impl="flash", mask=torch.ones(1, 5, dtype=torch.bool))


def test_causal_square_equals_reference_softmax():
    q, k, v = (torch.randn(1, 6, 1, 4, dtype=F64) for _ in range(3))
    ref = reference.softmax_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), 0.5, True)
    torch.testing.assert_close(attend(q, k, v, scale=0.5, causal=True), ref.transpose(1, 2), rtol=0, atol=1e-12)


def test_causal_mask_is_bottom_right_aligned():
    m = causal_mask(2, 4)
    assert m.tolist() == [[True, True, True, False], [True, True, True, True]]


def test_flash_unavailable_on_cpu_and_forcing_it_fails_clearly():
    q = torch.randn(1, 2, 2, 8, dtype=torch.float16)
    assert not flash_available(q, q)
    with pytest.raises(RuntimeError, match="flash-attn needs CUDA sm80"):
        attend(q, q, q, scale=1.0, causal=True, impl="flash")


def test_shape_errors():
    q = torch.randn(1, 3, 4, 8)
    with pytest.raises(ValueError, match="KV heads G=3 must divide query heads H=4"):
        attend(q, torch.randn(1, 3, 3, 8), torch.randn(1, 3, 3, 8), scale=1.0, causal=False)
    with pytest.raises(ValueError, match="expected q"):
        attend(q, torch.randn(1, 3, 1, 7), torch.randn(1, 3, 1, 8), scale=1.0, causal=False)
    with pytest.raises(ValueError, match="causal attention needs T <= S"):
        attend(q, torch.randn(1, 2, 1, 8), torch.randn(1, 2, 1, 8), scale=1.0, causal=True)
    with pytest.raises(ValueError, match="impl must be one of"):
        attend(q, q, q, scale=1.0, causal=False, impl="magic")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_gpu_backends_within_twice_reference_error(dtype):
    q = torch.randn(2, 64, 8, 64, device="cuda")
    k, v = torch.randn(2, 64, 2, 64, device="cuda"), torch.randn(2, 64, 2, 64, device="cuda")
    exact = per_head_reference(q.double(), k.double(), v.double(), 0.125, True)
    tol = reference.tolerance(exact, attend(q.to(dtype), k.to(dtype), v.to(dtype), scale=0.125, causal=True,
                                            impl="einsum"))
    for impl in ["sdpa"] + (["flash"] if flash_available(q.to(dtype), v.to(dtype)) else []):
        y = attend(q.to(dtype), k.to(dtype), v.to(dtype), scale=0.125, causal=True, impl=impl)
        assert (y.double() - exact).abs().max() <= tol
