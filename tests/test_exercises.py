"""Every registered exercise accepts its own solution and rejects a wrong answer."""
from pathlib import Path

import pytest
import torch

import tucker_lab as tkl
from tucker_lab import exercises


def wrong(answer):
    if isinstance(answer, bool):
        return not answer
    if isinstance(answer, (int, float)):
        return answer * 1.5 + 1
    if isinstance(answer, torch.Tensor):
        return answer + 1
    if isinstance(answer, (tuple, list)):
        return type(answer)(wrong(a) for a in answer)
    if isinstance(answer, dict):
        return {k: wrong(v) for k, v in answer.items()}
    return object()


@pytest.mark.parametrize("key", exercises.keys())
def test_solution_passes_and_wrong_answer_fails(key, capsys):
    sol = exercises.solution(key)
    assert exercises.check(key, sol)
    assert not exercises.check(key, wrong(sol))
    assert not exercises.check(key, None)
    out = capsys.readouterr().out
    assert f"Exercise {key}: correct." in out and f"Exercise {key}: not yet." in out
    assert f"Exercise {key}: no answer yet" in out
    assert max(map(len, out.splitlines())) <= 88


def test_every_book_chapter_has_exercises():
    book = Path(__file__).resolve().parents[1] / "book"
    written = {int(p.name[:2]) for p in book.glob("[0-9][0-9]_*.ipynb")}
    chapters = {int(k.split(".")[0]) for k in exercises.keys()}
    assert written and written <= chapters


def test_unknown_exercise():
    with pytest.raises(ValueError, match="no exercise '99.1'"):
        tkl.exercises.check("99.1", 0)
