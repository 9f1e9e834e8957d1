"""Parallel text for sequence-to-sequence models: source strings in ``X``, target strings in ``y``.

- ``dates``: seeded dates written the way people write them, in four languages and 14 formats
  ("dimanche 14 mars 2021", "14.3.21", "March 14th, 2021", and spelled out in words, as on an
  invitation or a cheque: "dimanche quatorze mars deux mille vingt et un"), to their ISO form
  ``2021-03-14``. Inputs run from 6 to about 70 characters. The month and day names come from the
  CLDR data of Babel and the numbers in words from num2words; years lie in 1950-2049, so a two-digit
  year has one reading (50-99: 19xx, 00-49: 20xx), and no format puts the month before the day where
  another puts the day first with the same separators (no US short dates), so every input has one answer.
- ``numbers``: whole numbers written in words in one language (num2words) to digits or to the words of
  another language.
- ``load_pairs``: the user's own ``source<TAB>target`` lines (``--data pairs.tsv``).

The task is ``translation``; ``Dataset.meta["synthetic"]`` says whether exact match is a fair score.
"""

from __future__ import annotations

import datetime as _dt
from collections import Counter
from pathlib import Path

import numpy as np

from deepatlas._optional import require
from deepatlas.data.core import Dataset, check_size, register_dataset, split
from deepatlas.errors import InputError

MAX_PAIR_CHARS = 1000
"""The longest line of a pairs file, in characters: a model reads a sentence, not a document."""

_LOCALES = ("en_US", "fr_FR", "de_DE", "es_ES")
# (kind, locales it applies to): Babel's CLDR patterns, then a few written by hand.
_FORMATS = (
    ("full", _LOCALES),
    ("long", _LOCALES),
    ("medium", _LOCALES),
    ("short", ("fr_FR", "de_DE", "es_ES")),  # day first; the US short date (month first) would be ambiguous
    ("d.M.yy", ("de_DE",)),
    ("d MMM y", ("en_US", "fr_FR")),
    ("ordinal", ("en_US",)),  # "March 14th, 2021"
    ("y/MM/dd", ("en_US",)),
    ("dd-MM-y", ("fr_FR", "es_ES")),
    ("words", _LOCALES),  # "dimanche quatorze mars deux mille vingt et un"
    ("day words", _LOCALES),  # the same without the weekday: "quatorze mars deux mille vingt et un"
)


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise InputError(f"Dataset option {name!r} must be an int {bound}. Got {value!r} instead.")
    return value


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _in_words(date: _dt.date, locale: str, weekday: bool) -> str:
    """The day and the year spelled out as people write them in ``locale`` (num2words), the weekday
    and month names from Babel: "Sunday, the fourteenth of March, twenty twenty-one", "dimanche
    quatorze mars deux mille vingt et un" (the first of the month: "premier"), "Sonntag, der
    vierzehnte März zweitausendeinundzwanzig", "domingo, catorce de marzo de dos mil veintiuno"
    (the first: "primero")."""
    babel_dates = require("nlp", "The 'dates' dataset", "babel.dates")
    num2words = require("nlp", "The 'dates' dataset", "num2words").num2words
    lang = locale[:2]
    month = babel_dates.format_date(date, "MMMM", locale=locale)
    day = date.day
    if lang == "en":
        text = f"the {num2words(day, lang='en', to='ordinal')} of {month}, {num2words(date.year, lang='en', to='year')}"
    elif lang == "fr":
        spoken = "premier" if day == 1 else num2words(day, lang="fr")
        text = f"{spoken} {month} {num2words(date.year, lang='fr')}"
    elif lang == "de":
        text = f"der {num2words(day, lang='de', to='ordinal')} {month} {num2words(date.year, lang='de', to='year')}"
    else:
        spoken = "primero" if day == 1 else num2words(day, lang="es")
        text = f"{spoken} de {month} de {num2words(date.year, lang='es')}"
    if not weekday:
        return text
    name = babel_dates.format_date(date, "EEEE", locale=locale)
    return f"{name} {text}" if lang == "fr" else f"{name}, {text}"


def write_date(date: _dt.date, kind: str, locale: str) -> str:
    """``date`` written in ``locale`` in the format ``kind`` (a Babel width, a CLDR pattern,
    ``ordinal``, or ``words``/``day words``: day and year spelled out, with or without the weekday)."""
    babel_dates = require("nlp", "The 'dates' dataset", "babel.dates")
    if kind == "ordinal":
        month = babel_dates.format_date(date, "MMMM", locale=locale)
        return f"{month} {_ordinal(date.day)}, {date.year}"
    if kind in ("words", "day words"):
        return _in_words(date, locale, weekday=kind == "words")
    return babel_dates.format_date(date, kind, locale=locale)


def date_pairs(n: int, seed: int) -> tuple[list[str], list[str], list[str]]:
    """``n`` (written date, ISO date, format name) triples, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    start = _dt.date(1950, 1, 1).toordinal()
    days = rng.integers(0, _dt.date(2049, 12, 31).toordinal() - start + 1, n)
    choices = [(kind, loc) for kind, locs in _FORMATS for loc in locs]
    picks = rng.integers(0, len(choices), n)
    src, tgt, kinds = [], [], []
    for d, k in zip(days.tolist(), picks.tolist()):
        date = _dt.date.fromordinal(start + d)
        kind, loc = choices[k]
        src.append(write_date(date, kind, loc).replace("\u202f", " ").replace("\xa0", " "))
        tgt.append(date.isoformat())
        kinds.append(f"{kind}\t{loc}")
    return src, tgt, kinds


def _make(name: str, src, tgt, seed: int, description: str, **meta) -> Dataset:
    X = np.array(src, dtype=object)
    y = np.array(tgt, dtype=object)
    parts = split(X, y, seed=seed, stratify=False)
    return Dataset(
        name,
        "translation",
        *parts,
        description=description,
        feature_names=["source"],
        target_name="target",
        meta={"level": "char", **meta},
    )


@register_dataset(
    "dates",
    task="translation",
    description="seeded human-written dates in 4 languages and 14 formats, some in words -> ISO 8601 (Babel, num2words)",
)
def dates(n: int = 10000, seed: int = 0) -> Dataset:
    _check_int("n", n, 20)
    check_size("dates", 300 * n, {"n": n})
    src, tgt, _ = date_pairs(n, seed)
    return _make("dates", src, tgt, seed, "written dates (en/fr/de/es, 1950-2049) to YYYY-MM-DD", synthetic=True)


@register_dataset(
    "numbers",
    task="translation",
    description="whole numbers in words (num2words) -> digits or the words of another language",
)
def numbers(n: int = 10000, seed: int = 0, source: str = "en", target: str = "digits", high: int = 9999) -> Dataset:
    _check_int("n", n, 20)
    _check_int("high", high, 10, 10**9)
    check_size("numbers", 400 * n, {"n": n})
    num2words = require("nlp", "The 'numbers' dataset", "num2words").num2words
    for key, lang in (("source", source), ("target", target)):
        if key == "target" and lang == "digits":
            continue
        try:
            num2words(1, lang=lang)
        except NotImplementedError:
            raise InputError(
                f"Dataset option {key!r} of 'numbers' must be a language num2words knows (en, fr, de, es, ...)"
                f"{' or digits' if key == 'target' else ''}. Got {lang!r} instead."
            ) from None
    rng = np.random.default_rng(seed)
    values = rng.integers(0, high + 1, n).tolist()
    src = [num2words(v, lang=source) for v in values]
    tgt = [str(v) if target == "digits" else num2words(v, lang=target) for v in values]
    return _make("numbers", src, tgt, seed, f"numbers 0-{high}: {source} words -> {target}", synthetic=True)


def looks_like_pairs(path: Path) -> bool:
    """A ``.tsv`` whose lines hold at most two fields, the second line's first one not a number: a
    file of sentence pairs rather than a table of numeric features."""
    try:
        with open(path, encoding="utf-8-sig") as f:
            lines = [line.rstrip("\r\n") for _, line in zip(range(50), f) if line.strip()]
    except (OSError, UnicodeDecodeError):
        return False
    if not lines or any(line.count("\t") > 1 for line in lines):
        return False
    probe = lines[1] if len(lines) > 1 else lines[0]
    first = probe.split("\t")[0].strip()
    try:
        float(first)
        return False
    except ValueError:
        return True


def read_pairs(path: Path) -> tuple[list[str], list[str]]:
    """The ``source<TAB>target`` lines of ``path`` (blank lines skipped); one line naming the
    file and the line for a missing tab, an empty side or a line over :data:`MAX_PAIR_CHARS`."""
    shown = repr(str(path))
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"Data file {shown} is not UTF-8 text.") from None
    except OSError as exc:
        raise InputError(f"Data file {shown} cannot be read: {exc.strerror}.") from None
    src, tgt = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(line) > MAX_PAIR_CHARS:
            raise InputError(
                f"Data file {shown}: line {number} has {len(line)} characters, over the limit of {MAX_PAIR_CHARS} "
                "for one pair; split or drop it."
            )
        fields = line.split("\t")
        if len(fields) != 2:
            found = "no tab" if len(fields) == 1 else f"{len(fields) - 1} tabs"
            raise InputError(f"Data file {shown}: line {number} has {found}; each line must be 'source<TAB>target'.")
        a, b = fields[0].strip(), fields[1].strip()
        if not a or not b:
            side = "source (before the tab)" if not a else "target (after the tab)"
            raise InputError(f"Data file {shown}: line {number} has an empty {side}.")
        src.append(a)
        tgt.append(b)
    return src, tgt


def load_pairs(path: Path, *, seed: int = 0) -> Dataset:
    """The user's sentence pairs, split 70/10/20 with ``seed``."""
    src, tgt = read_pairs(Path(path))
    if len(src) < 10:
        raise InputError(
            f"Data file {str(path)!r} has {len(src)} pairs; at least 10 are needed to split train, validation and test."
        )
    return _make(str(path), src, tgt, seed, f"sentence pairs from {path}", synthetic=False)


SWORD_DIR = "/usr/share/sword"
_BIBLE_MODULES = ("engKJV2006eb", "spaRV1909eb")  # Debian sword-text-kjv, sword-text-sparv (public domain)


def _bible_cache() -> Path:
    import os

    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "deepatlas"
    return root / "bible-kjv-rv1909.tsv"


def bible_verses() -> tuple[list[str], list[str]]:
    """Every verse of the King James Bible and of the Reina-Valera 1909, aligned by verse (both
    modules use the KJV versification); read once with pysword (a few minutes) and cached as TSV."""
    cache = _bible_cache()
    if cache.exists():
        return read_pairs(cache)
    try:
        from pysword.modules import SwordModules
    except ImportError:
        raise InputError(
            "The 'bible' dataset reads the SWORD modules with pysword: pip install 'deepatlas[nlp]' "
            "(and apt-get install sword-text-kjv sword-text-sparv)."
        ) from None
    modules = SwordModules(SWORD_DIR)
    try:
        found = modules.parse_modules()
    except (OSError, FileNotFoundError):
        found = {}
    missing = [m for m in _BIBLE_MODULES if m not in found]
    if missing:
        raise InputError(
            f"The 'bible' dataset needs the SWORD modules {', '.join(missing)} in {SWORD_DIR}: "
            "apt-get install sword-text-kjv sword-text-sparv (Debian/Ubuntu)."
        )
    en, es = (modules.get_bible_from_module(m) for m in _BIBLE_MODULES)
    books = [b.name for part in ("ot", "nt") for b in en.get_structure().get_books()[part]]
    src, tgt = [], []
    for book in books:
        a = en.get(books=[book], clean=True, join="\n").split("\n")
        b = es.get(books=[book], clean=True, join="\n").split("\n")
        for x, y in zip(a, b):
            x, y = " ".join(x.replace("¶", " ").split()), " ".join(y.replace("¶", " ").split())
            if x and y:
                src.append(x)
                tgt.append(y)
    from deepatlas._io import atomic_write_text

    cache.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cache, "".join(f"{x}\t{y}\n" for x, y in zip(src, tgt)))
    return src, tgt


@register_dataset(
    "bible",
    task="translation",
    description="verse-aligned English (KJV) -> Spanish (Reina-Valera 1909) Bible, short verses (Debian SWORD modules)",
)
def bible(max_words: int = 12, seed: int = 0) -> Dataset:
    _check_int("max_words", max_words, 2, 200)
    src, tgt = bible_verses()
    keep = [i for i in range(len(src)) if len(src[i].split()) <= max_words and len(tgt[i].split()) <= max_words]
    if len(keep) < 10:
        raise InputError(f"Dataset option 'max_words' of 'bible' keeps {len(keep)} verses; raise it.")
    return _make(
        "bible",
        [src[i] for i in keep],
        [tgt[i] for i in keep],
        seed,
        f"KJV -> Reina-Valera 1909, verses of at most {max_words} words on both sides",
        synthetic=False,
        level="word",
    )


def dictionary_translate(sources, targets, queries, tokenize) -> list[str]:
    """Word-by-word translation with a dictionary from the pairs: each source word -> the target
    word of the highest Dice coefficient ``2 c(s, t) / (c(s) + c(t))`` over sentence co-occurrence."""
    src_count, tgt_count, pair_count = Counter(), Counter(), Counter()
    for s, t in zip(sources, targets):
        sw, tw = set(tokenize(s)), set(tokenize(t))
        src_count.update(sw)
        tgt_count.update(tw)
        pair_count.update((a, b) for a in sw for b in tw)
    best: dict[str, tuple[float, str]] = {}
    for (a, b), c in pair_count.items():
        dice = 2 * c / (src_count[a] + tgt_count[b])
        if dice > best.get(a, (-1.0, ""))[0]:
            best[a] = (dice, b)
    return [" ".join(best[w][1] for w in tokenize(q) if w in best) for q in queries]
