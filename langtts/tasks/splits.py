"""Deterministic, non-overlapping search/test splits of a task's examples."""

from __future__ import annotations

import random
from collections.abc import Sequence

from langtts.tasks.base import Example


def search_test_split(
    examples: Sequence[Example], n_search: int, n_test: int, seed: int = 0, *, test_first: bool = False
) -> tuple[list[Example], list[Example]]:
    """Draw `n_search` search and `n_test` test examples without overlap.

    The draw shuffles the sorted ids with ``random.Random(seed)``, so it depends only on the ids and the seed
    (not on the input order, ``hash()`` or the Python version). By default the search examples are drawn first
    and both lists keep the input order. With ``test_first`` the test examples are drawn first, so they do not
    depend on ``n_search``, and the search examples come in draw order, so a larger ``n_search`` only appends.
    """
    if n_search < 0 or n_test < 0:
        raise ValueError(f"split sizes must be >= 0, got n_search={n_search}, n_test={n_test}")
    ids = [ex.id for ex in examples]
    if len(set(ids)) != len(ids):
        raise ValueError("example ids are not unique")
    if n_search + n_test > len(ids):
        raise ValueError(f"need {n_search} + {n_test} examples, only {len(ids)} available")
    order = sorted(ids)
    random.Random(seed).shuffle(order)
    if test_first:
        by_id = {ex.id: ex for ex in examples}
        test_ids = set(order[:n_test])
        return [by_id[i] for i in order[n_test : n_test + n_search]], [ex for ex in examples if ex.id in test_ids]
    search_ids, test_ids = set(order[:n_search]), set(order[n_search : n_search + n_test])
    assert not search_ids & test_ids
    return [ex for ex in examples if ex.id in search_ids], [ex for ex in examples if ex.id in test_ids]
