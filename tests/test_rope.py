"""RoPE: one half-split convention, checked against complex multiplication."""
import pytest
import torch

from tucker_lab import reference
from tucker_lab.rope import apply_rope, rope_angles

F64 = torch.float64


@pytest.mark.parametrize("shape", [(2, 7, 8), (1, 5, 3, 6), (2, 4, 2, 3, 10)])
def test_full_rope_equals_complex_rotation(shape):
    x = torch.randn(*shape, dtype=F64)
    pos = torch.arange(3, 3 + shape[1])
    ref = reference.rope(x.movedim(1, -2), pos).movedim(-2, 1)  # reference wants (..., T, n)
    torch.testing.assert_close(apply_rope(x, pos), ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(apply_rope(x, 3), ref, rtol=0, atol=1e-12)  # int start position


def test_scores_depend_only_on_relative_position():
    q, k = torch.randn(1, 1, 16, dtype=F64), torch.randn(1, 1, 16, dtype=F64)
    score = lambda m, n: (apply_rope(q, m) * apply_rope(k, n)).sum().item()
    assert score(7, 3) == pytest.approx(score(104, 100), abs=1e-12)
    assert abs(score(7, 3) - score(7, 4)) > 1e-6


def test_block_and_tail_layouts():
    x = torch.randn(2, 5, 3, 12, dtype=F64)
    pos = torch.arange(5)
    blocks = torch.cat([apply_rope(b, pos) for b in x.split(4, -1)], -1)
    torch.testing.assert_close(apply_rope(x, pos, layout="block", rope_dim=4), blocks, rtol=0, atol=0)
    tail = apply_rope(x, pos, layout="tail", rope_dim=6)
    torch.testing.assert_close(tail[..., :6], x[..., :6], rtol=0, atol=0)
    torch.testing.assert_close(tail[..., 6:], apply_rope(x[..., 6:], pos), rtol=0, atol=0)


def test_interleaved_convention_is_a_permutation_of_ours():
    """GPT-J/DeepSeek interleave pairs (0,1), (2,3), ...; permuting dims to
    half-split gives the same scores, so weights convert by a row permutation."""
    n, T = 8, 6
    q, k = torch.randn(T, n, dtype=F64), torch.randn(T, n, dtype=F64)
    pos = torch.arange(T)

    def interleaved(x):
        z = torch.view_as_complex(x.view(T, n // 2, 2).contiguous())
        theta = 10000.0 ** (-torch.arange(0, n, 2, dtype=F64) / n)
        return torch.view_as_real(z * torch.polar(torch.ones_like(theta), pos[:, None] * theta)).flatten(1)

    perm = torch.cat((torch.arange(0, n, 2), torch.arange(1, n, 2)))  # (0,2,4,6,1,3,5,7)
    ours = apply_rope(q[None, :, perm], pos) @ apply_rope(k[None, :, perm], pos).transpose(1, 2)
    theirs = interleaved(q) @ interleaved(k).T
    torch.testing.assert_close(ours[0], theirs, rtol=0, atol=1e-12)


def test_angles_are_float32_for_half_precision_inputs():
    x = torch.randn(1, 4, 8, dtype=torch.bfloat16)
    pos = torch.tensor([0, 1000, 50000, 100000])
    assert rope_angles(pos, 8).dtype == torch.float32
    exact = reference.rope(x.double(), pos)
    # bf16 rounding of the result only (~1e-2 relative), not of the angles (~hundreds of rad)
    torch.testing.assert_close(apply_rope(x, pos).double(), exact, rtol=2e-2, atol=2e-2)


def test_odd_dims_and_unknown_layout_are_errors():
    with pytest.raises(ValueError, match="even number of dims; got 7"):
        apply_rope(torch.randn(1, 2, 7), 0)
    with pytest.raises(ValueError, match="layout must be"):
        apply_rope(torch.randn(1, 2, 8), 0, layout="diagonal")


def test_rope_frequencies_match_the_rotation():
    """Each dim's frequency is the angle it turns by per position."""
    from tucker_lab.rope import rope_frequencies
    for layout, rd in (("full", None), ("block", 4), ("tail", 6)):
        f = rope_frequencies(12, layout=layout, rope_dim=rd)
        x = torch.zeros(1, 2, 12, dtype=F64)
        x[..., :] = 1.0
        y = apply_rope(x, torch.tensor([0, 1]), layout=layout, rope_dim=rd)[0, 1]
        # a pair (x1, x2) = (1, 1) turned by theta has x1' = cos - sin; unrotated dims stay 1
        expected = torch.where(f > 0, torch.cos(f) - torch.sin(f), torch.ones_like(f))
        half = {"full": [slice(0, 6)], "block": [slice(0, 2), slice(4, 6), slice(8, 10)], "tail": [slice(6, 9)]}[layout]
        for sl in half:
            torch.testing.assert_close(y[sl], expected[sl])


@pytest.mark.parametrize("n,kw,msg", [
    (7, dict(), "even number of dims; got n=7"),
    (12, dict(layout="block", rope_dim=5), "rope_dim must be an even integer >= 2 for the block layout; got 5"),
    (12, dict(layout="block", rope_dim=8), "rope_dim=8 must divide n=12"),
    (12, dict(layout="tail", rope_dim=14), "rope_dim=14 must be at most n=12"),
    (12, dict(layout="tail"), "rope_dim must be an even integer >= 2 for the tail layout; got None"),
])
def test_rope_frequencies_reject_layouts_that_do_not_fit(n, kw, msg):
    from tucker_lab.rope import rope_frequencies
    with pytest.raises(ValueError, match=msg):
        rope_frequencies(n, **kw)
