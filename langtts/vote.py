"""Majority votes over extracted answers: the rule of a vote node, and the agreement among any node's inputs.

Answers are grouped under the task's ``equivalent`` (an answer joins the first group whose first answer it is
equivalent to; an equivalence check that times out counts as equal only when the texts are equal). Inputs
without an answer are ignored. The winner is the group with the most inputs; **ties** go to the group holding
the largest model (by the cost model's matmul parameters M), then to the group whose first answer comes from the
earliest input in the node's input (edge) order. The winning answer is spelled as its group's first answer.
With no answer at all there is no winner.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

NO_ANSWER_TEXT = "Vote: no input gave an answer."


@dataclass(frozen=True)
class Tally:
    """The outcome of a vote: the winning answer (None: no input gave one), how many inputs gave it, how many
    inputs were read and how many of them gave an answer."""

    answer: str | None
    count: int
    inputs: int
    answered: int

    @property
    def agreement(self) -> float:
        """Share of the inputs giving the winning answer (0.0 when none gave an answer)."""
        return self.count / self.inputs if self.inputs else 0.0

    def text(self, format_answer: Callable[[str], str]) -> str:
        """The vote's reply: a count line, then the winning answer as the task's answer line, e.g.
        ``Vote: 3 of 5 inputs agree (1 gave none).`` / ``Answer: C``; without a winner a line with no answer."""
        if self.answer is None:
            return NO_ANSWER_TEXT
        missing = self.inputs - self.answered
        note = f" ({missing} gave none)" if missing else ""
        return f"Vote: {self.count} of {self.inputs} inputs agree{note}.\n{format_answer(self.answer)}"


def tally(
    answers: Sequence[str | None],
    equivalent: Callable[[str, str], bool],
    sizes: Sequence[float] | None = None,
) -> Tally:
    """The majority of ``answers`` (one per input, None: no answer) under ``equivalent``; ``sizes`` are the
    inputs' model sizes for breaking ties (default: all equal)."""
    groups: list[list[int]] = []
    for i, answer in enumerate(answers):
        if answer is None:
            continue
        group = next((g for g in groups if _same(equivalent, answers[g[0]], answer)), None)  # type: ignore[arg-type]
        if group is None:
            groups.append([i])
        else:
            group.append(i)
    answered = sum(a is not None for a in answers)
    if not groups:
        return Tally(None, 0, len(answers), answered)
    weight = list(sizes) if sizes is not None else [0.0] * len(answers)
    best = max(groups, key=lambda g: (len(g), max(weight[i] for i in g), -g[0]))
    return Tally(answers[best[0]], len(best), len(answers), answered)


def _same(equivalent: Callable[[str, str], bool], a: str, b: str) -> bool:
    try:
        return equivalent(a, b)
    except TimeoutError:
        return a.strip() == b.strip()
