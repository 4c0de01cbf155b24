"""Diversity: near-duplicates collapsed into one item, then MMR with a per-creator cap.

Pure numpy over a few hundred candidates. ``vectors`` are unit rows, so a dot product is a
cosine similarity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Collapsed:
    keep: list[int]  # candidate indices that survive, in the input order
    folded: dict[int, list[int]]  # kept index -> indices folded into it


def collapse_near_duplicates(
    order: Sequence[int],
    vectors: np.ndarray,
    threshold: float,
    groups: Sequence[str] | None = None,
) -> Collapsed:
    """Walk candidates best first; fold each into an earlier kept one it nearly duplicates.

    Two candidates are near-duplicates when their cosine is at least ``threshold`` or when they
    share a non-empty ``groups`` key (e.g. the same ``near_duplicate_of`` root). One matrix
    product finds every candidate pair; only candidates that have a partner are walked.
    """
    order = list(order)
    if not order:
        return Collapsed([], {})
    x = vectors[order]
    close: np.ndarray = (
        (x @ x.T) >= threshold if threshold <= 1.0 else np.zeros((len(order),) * 2, bool)
    )
    keys = [groups[i] for i in order] if groups is not None else []
    if keys and len(set(keys)) < len(keys):
        # Only the few keys shared by several candidates join pairs: marked group by group
        # rather than by comparing every pair of keys.
        positions: dict[str, list[int]] = {}
        for pos, key in enumerate(keys):
            if key:
                positions.setdefault(key, []).append(pos)
        for same in positions.values():
            if len(same) > 1:
                close[np.ix_(same, same)] = True
    np.fill_diagonal(close, False)
    keep: list[int] = []
    folded: dict[int, list[int]] = {}
    owner_of = np.full(len(order), -1)  # position -> position of the kept item it folded into
    has_partner = np.asarray(close.any(axis=1), dtype=bool)
    for pos, i in enumerate(order):
        if has_partner[pos]:
            earlier = np.flatnonzero(close[pos, :pos])
            kept_earlier = [e for e in earlier if owner_of[e] == e]
            if kept_earlier:
                owner = kept_earlier[0]
                owner_of[pos] = owner
                folded.setdefault(order[owner], []).append(i)
                continue
        owner_of[pos] = pos
        keep.append(i)
    return Collapsed(keep, folded)


def mmr_rank(
    relevance: np.ndarray,
    vectors: np.ndarray,
    depth: int,
    lam: float,
    creators: Sequence[str],
    creator_cap: int,
    page_size: int,
    fixed: dict[int, int] | None = None,
) -> list[int]:
    """Greedy MMR: each step takes the argmax of ``lam * rel - (1 - lam) * max_sim_selected``.

    ``relevance`` is scaled to [0, 1] first so it is comparable with cosine similarity. At most
    ``creator_cap`` items of one creator land in each page of ``page_size`` positions
    (0 disables the cap); the cap yields only when every candidate left is capped.
    ``fixed`` maps positions to candidate indices that must sit there (exploration slots);
    they count toward the creator cap and the novelty term like any other pick.
    """
    n = relevance.shape[0]
    fixed = dict(fixed or {})
    if n == 0 or depth <= 0:
        return []
    rel = np.asarray(relevance, dtype=np.float64)
    lo, hi = float(rel.min()), float(rel.max())
    rel = (rel - lo) / (hi - lo) if hi - lo > 1e-12 else np.ones(n)
    if lam >= 1.0:  # no novelty term: the order is relevance's, under the cap
        return _by_relevance(rel, depth, creators, creator_cap, page_size, fixed)
    # The loop runs once per position, so it keeps few numpy calls: ``open_value`` is the
    # relevance term with -inf for items already placed, ``penalty`` the novelty term
    # (1 - lam) * max similarity to anything ranked so far, and ``capped`` -inf for the
    # creators at the cap on the current page.
    open_value = lam * rel
    novelty_weight = 1.0 - lam
    penalty = np.zeros(n)
    for i in fixed.values():
        open_value[i] = -np.inf
    # Creators as integer codes; "" (unknown creator) is never capped.
    names = {c: i for i, c in enumerate(dict.fromkeys(creators))}
    code_of = [names[c] for c in creators]
    codes = np.array(code_of, dtype=np.int64)
    uncapped = names.get("", -1)
    page_counts: dict[int, int] = {}
    capped = np.zeros(n)
    any_capped = False
    current_page = 0
    ranking: list[int] = []
    first = True
    # Buffers each step writes into, and methods rather than np.argmax: fewer allocations
    # and wrappers in a loop that runs once per position.
    value = np.empty(n)
    dots = np.empty(n, dtype=vectors.dtype)
    sims = np.empty(n)
    minus_inf = -np.inf
    while len(ranking) < depth:
        position = len(ranking)
        page = position // max(page_size, 1)
        if page != current_page:
            page_counts, current_page = {}, page
            if any_capped:
                capped[:] = 0.0
                any_capped = False
        if position in fixed:
            pick = fixed.pop(position)
        else:
            np.subtract(open_value, penalty, out=value)
            pick = -1
            if any_capped:
                best = int((value + capped).argmax())
                # The cap yields when only capped creators are left: a short page helps nobody.
                pick = best if value[best] + capped[best] > minus_inf else -1
            if pick < 0:
                pick = int(value.argmax())
            if value[pick] == minus_inf:
                ranking.extend(fixed[p] for p in sorted(fixed))  # exploration slots still go in
                break
            open_value[pick] = minus_inf
        ranking.append(pick)
        code = code_of[pick]
        if code != uncapped and creator_cap > 0:
            page_counts[code] = page_counts.get(code, 0) + 1
            if page_counts[code] >= creator_cap:
                capped[codes == code] = minus_inf
                any_capped = True
        np.matmul(vectors, vectors[pick], out=dots)
        np.multiply(dots, novelty_weight, out=sims, dtype=np.float64)
        if first:
            penalty, sims, first = sims, penalty, False
        else:
            np.maximum(penalty, sims, out=penalty)
    return ranking


def _by_relevance(
    rel: np.ndarray,
    depth: int,
    creators: Sequence[str],
    creator_cap: int,
    page_size: int,
    fixed: dict[int, int],
) -> list[int]:
    """``mmr_rank`` with no novelty term: each position takes the most relevant item left
    whose creator is under the cap on its page (the first index on a tie, as argmax), else
    the most relevant item left; ``fixed`` positions hold their items."""
    placed = set(fixed.values())
    waiting = [int(i) for i in np.argsort(-rel, kind="stable") if int(i) not in placed]
    ranking: list[int] = []
    counts: dict[str, int] = {}
    # Counts only grow within a page: once every item left is capped, the rest of the page
    # takes them in relevance order without scanning again.
    all_capped = False
    while len(ranking) < depth:
        position = len(ranking)
        if position % max(page_size, 1) == 0:
            counts, all_capped = {}, False
        if position in fixed:
            pick = fixed.pop(position)
        elif not waiting:
            ranking.extend(fixed[p] for p in sorted(fixed))  # exploration slots still go in
            break
        else:
            at = -1
            if creator_cap > 0 and not all_capped:
                at = next(
                    (
                        n for n, i in enumerate(waiting)
                        if not creators[i] or counts.get(creators[i], 0) < creator_cap
                    ),
                    -1,
                )  # fmt: skip
                all_capped = at < 0
            pick = waiting.pop(max(at, 0))
        ranking.append(pick)
        creator = creators[pick]
        if creator and creator_cap > 0:
            counts[creator] = counts.get(creator, 0) + 1
    return ranking


def merge_pages(
    exploited: Sequence[int],
    explored: Sequence[int],
    slots: set[int],
    creators: Sequence[str],
    creator_cap: int,
    page_size: int,
) -> list[int]:
    """One list: ``explored`` items at the positions in ``slots`` (in order), ``exploited``
    items everywhere else, taking for each position the first one whose creator is not yet at
    ``creator_cap`` on that page (the cap yields only when every one left is capped).

    The cap holds for explored items too: one whose creator is at the cap waits for a later
    slot (a later page's, if need be), and its slot goes to the next explored item that fits,
    else to an exploited one. A slot with no explored item left is filled from ``exploited``;
    once ``exploited`` runs out, the remaining explored items follow.
    """
    final: list[int] = []
    waiting = list(exploited)
    picks = list(explored)
    counts: dict[str, int] = {}

    def fits(item: int) -> bool:
        c = creators[item]
        return creator_cap <= 0 or not c or counts.get(c, 0) < creator_cap

    def first_fitting(items: list[int]) -> int | None:
        for n, i in enumerate(items):
            if fits(i):
                return n
        return None

    while waiting or picks:
        position = len(final)
        if position % max(page_size, 1) == 0:
            counts = {}
        if picks and not waiting:
            item = picks.pop(first_fitting(picks) or 0)
        elif picks and position in slots and (pick := first_fitting(picks)) is not None:
            item = picks.pop(pick)
        else:
            item = waiting.pop(first_fitting(waiting) or 0)
        final.append(item)
        if creators[item]:
            counts[creators[item]] = counts.get(creators[item], 0) + 1
    return final
