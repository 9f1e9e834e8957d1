"""Named-entity data: the synthetic ``ner-synth`` corpus and the user's CoNLL-2003 / IOB2 files.

A dataset of this module has task ``tagging`` and holds sentences: ``X_*`` is a 1-D object array
whose entries are lists of tokens, ``y_*`` one of the same shape whose entries are lists of tags
(``O``, ``B-TYPE``, ``I-TYPE``, and in BIOES also ``E-TYPE`` and ``S-TYPE``).

``ner-synth`` (seeded) fills about fifty English sentence templates with entities drawn from
Faker (Faraglia et al.) in six locales (US and British English, German, French, Spanish, Dutch): person names (PER), companies (ORG), cities and countries
(LOC), languages and currencies (MISC), and dates written by Babel from the CLDR patterns (DATE).
Every type's pool of entity strings is split three ways before any sentence is made, so **no
entity string of the validation or test sentences occurs in the training sentences**: a tagger
must recognise new names from their spelling and their context, not remember them. Some
templates take an entity of any of PER/ORG/LOC in the same slot (``{ANY}``: "{ANY} was mentioned
twice"), where only the name itself tells the type.

CoNLL files (Tjong Kim Sang and De Meulder, 2003): one token per line with its tag in the last
whitespace-separated column (columns between, such as part-of-speech tags, are ignored), a blank
line between sentences, ``-DOCSTART-`` lines skipped. The tags are checked in the scheme the file
uses (BIOES when it has any ``E-``/``S-`` tag, else strict IOB2): an ``I-X`` must continue a
``B-X`` or ``I-X``; in BIOES an entity must also end with ``E-X`` and single tokens use ``S-X``.
Every problem is one line naming the file and the line number.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import numpy as np

from deepatlas.data.core import Dataset, check_size, register_dataset, split
from deepatlas.data.text import tokenize
from deepatlas.errors import InputError

TYPES = ("PER", "ORG", "LOC", "DATE", "MISC")
LOCALES = ("en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "nl_NL")
# (not it_IT: its city() depends on PYTHONHASHSEED, so the corpus would differ between processes)
_SLOT = re.compile(r"\{(PER|ORG|LOC|DATE|MISC|ANY)\}")

TEMPLATES = (
    "{PER} joined {ORG} in {LOC} on {DATE} .",
    "{ORG} opened a new office in {LOC} .",
    "According to {PER} , {ORG} will hire 200 people next year .",
    "The meeting between {PER} and {PER} took place in {LOC} .",
    "{PER} was born in {LOC} on {DATE} .",
    "Shares of {ORG} fell 3 percent on {DATE} .",
    "{ORG} signed a contract with {ORG} worth 5 million {MISC} .",
    "She moved from {LOC} to {LOC} after the war .",
    "{PER} speaks fluent {MISC} and some {MISC} .",
    "The report was published by {ORG} on {DATE} .",
    "{PER} , a spokesman for {ORG} , declined to comment .",
    "Flights to {LOC} were cancelled on {DATE} because of the storm .",
    "In {LOC} , prices are quoted in {MISC} .",
    "{ANY} was mentioned twice in the article .",
    "We heard about {ANY} from a colleague .",
    "Nobody expected {ANY} to appear in the final list .",
    "The letter from {PER} arrived on {DATE} .",
    "{ORG} reported record profits for the quarter ending {DATE} .",
    "Police in {LOC} arrested two men on {DATE} .",
    "{PER} told reporters that {ORG} had no plans to leave {LOC} .",
    "The course is taught in {MISC} at a school near {LOC} .",
    "{PER} and {PER} founded {ORG} in {LOC} .",
    "Talks between {ORG} and {ORG} ended without an agreement .",
    "{LOC} beat {LOC} 2 - 1 on {DATE} .",
    "The new director , {PER} , starts on {DATE} .",
    "Visitors to {LOC} can pay in {MISC} .",
    "{ORG} , based in {LOC} , makes garden tools .",
    "Yesterday {PER} visited {LOC} for the first time .",
    "The contract expires on {DATE} .",
    "Our thanks go to {PER} for her help .",
    "He translated the book from {MISC} into {MISC} .",
    "Rain is expected in {LOC} until {DATE} .",
    "{PER} resigned from {ORG} last week .",
    "The price of bread in {LOC} rose sharply .",
    "A spokeswoman for {ORG} said the factory would close .",
    "{PER} met {PER} at a conference in {LOC} on {DATE} .",
    "There was no comment from {ANY} .",
    "The deal with {ANY} was approved on {DATE} .",
    "Most people in {LOC} speak {MISC} .",
    "{ORG} lost its appeal on {DATE} .",
    "I sent the file to {PER} this morning .",
    "The exchange rate of the {MISC} fell again .",
    "{PER} , who lives in {LOC} , works for {ORG} .",
    "Tickets went on sale on {DATE} .",
    "{ORG} bought a stake in {ORG} .",
    "After years in {LOC} , {PER} returned home .",
    "It was cold and wet for most of the week .",
    "The results will be announced on {DATE} in {LOC} .",
    "Everyone agreed with {ANY} in the end .",
    "{PER} wrote to {ORG} about the delay .",
)


# ---- tags -------------------------------------------------------------------------------------------
def tag_scheme(tags: list[list[str]]) -> str:
    """``"BIOES"`` when any tag starts with ``E-`` or ``S-``, else ``"IOB2"``."""
    return "BIOES" if any(t[:2] in ("E-", "S-") for sent in tags for t in sent) else "IOB2"


def check_tag_sequence(tags: list[str], scheme: str, where, lines: list[int] | None = None) -> None:
    """Refuse a malformed tag or an entity that breaks ``scheme`` (strict IOB2 or BIOES), naming
    ``where`` and the line (or the token position when ``lines`` is not given)."""
    prefixes = ("B", "I", "E", "S") if scheme == "BIOES" else ("B", "I")

    def at(i):
        return f"line {lines[i]}" if lines else f"token {i + 1}"

    for i, tag in enumerate(tags):
        if tag == "O":
            continue
        p, dash, kind = tag.partition("-")
        if not dash or p not in prefixes or not kind:
            allowed = "O, B-TYPE, I-TYPE" + (", E-TYPE, S-TYPE" if scheme == "BIOES" else "")
            raise InputError(f"{where}: {at(i)}: tag {tag!r} is not one of {allowed} ({scheme}).")
        prev = tags[i - 1] if i else "O"
        if p in ("I", "E") and prev not in (f"B-{kind}", f"I-{kind}"):
            raise InputError(
                f"{where}: {at(i)}: tag {tag!r} follows {prev!r}; in {scheme} an entity starts with B-{kind}"
                + (f" (or is a single S-{kind})" if scheme == "BIOES" else "")
                + "."
            )
        nxt = tags[i + 1] if i + 1 < len(tags) else "O"
        if scheme == "BIOES" and p in ("B", "I") and nxt not in (f"I-{kind}", f"E-{kind}"):
            raise InputError(
                f"{where}: {at(i)}: tag {tag!r} is followed by {nxt!r}; in BIOES an entity ends with E-{kind}."
            )


def entity_spans(tags: list[str]) -> list[tuple[str, int, int]]:
    """``(type, start, end)`` token spans (end exclusive), read as seqeval reads them."""
    from seqeval.metrics.sequence_labeling import get_entities

    return [(kind, start, end + 1) for kind, start, end in get_entities(list(tags))]


def as_objects(items: list) -> np.ndarray:
    """A 1-D object array whose entries are the given lists (numpy would make a 2-D array of equal-length ones)."""
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = list(item)
    return out


# ---- ner-synth ---------------------------------------------------------------------------------------
def _entity_pools(seed: int, sizes: dict[str, int]) -> dict[str, list[str]]:
    from faker import Faker

    try:
        from babel.dates import format_date
    except ImportError:  # pragma: no cover - babel comes with faker's extra [nlp]
        raise InputError("Dataset 'ner-synth' needs babel: pip install 'deepatlas[nlp]'") from None
    import datetime

    fakers = []
    for k, loc in enumerate(LOCALES):
        f = Faker(loc)
        f.seed_instance(seed * 1009 + k)
        fakers.append(f)
    rng = np.random.default_rng(seed)
    makers = {
        "PER": lambda f: f.name(),
        "ORG": lambda f: f.company(),
        "LOC": lambda f: f.city() if rng.random() < 0.7 else f.country(),
        "MISC": lambda f: f.language_name() if rng.random() < 0.5 else f.currency_name(),
    }
    pools: dict[str, list[str]] = {}
    for kind, make in makers.items():
        seen: dict[str, None] = {}
        for i in range(sizes[kind] * 3):
            seen.setdefault(" ".join(tokenize(make(fakers[i % len(fakers)]))), None)
        pools[kind] = list(seen)
    start = datetime.date(1950, 1, 1).toordinal()
    dates: dict[str, None] = {}
    for _ in range(sizes["DATE"]):
        day = datetime.date.fromordinal(start + int(rng.integers(0, 80 * 365)))
        loc, fmt = [("en_US", "long"), ("en_GB", "long"), ("en_US", "medium"), ("en_GB", "full")][rng.integers(4)]
        dates.setdefault(" ".join(tokenize(format_date(day, fmt, locale=loc))), None)
    pools["DATE"] = list(dates)
    return pools


@functools.lru_cache(maxsize=4)
def _synth(n: int, seed: int, unseen: bool):
    sizes = {"PER": 2000, "ORG": 1200, "LOC": 1200, "DATE": 1500, "MISC": 300}
    pools = _entity_pools(seed, sizes)
    rng = np.random.default_rng(seed + 1)
    parts = {"train": 0.7, "val": 0.1, "test": 0.2}
    # Each distinct string goes to one split (70/10/20), whatever its types: a surname that is
    # both a French company and part of no person's name is still only ever in one split.
    strings = sorted({s for names in pools.values() for s in names})
    where = dict(zip((strings[i] for i in rng.permutation(len(strings))), np.arange(len(strings)) / len(strings)))
    split_pools: dict[str, dict[str, list[str]]] = {p: {} for p in parts}
    for kind, names in pools.items():
        for p, (lo, hi) in {"train": (0, 0.7), "val": (0.7, 0.8), "test": (0.8, 1.01)}.items():
            split_pools[p][kind] = [s for s in names if not unseen or lo <= where[s] < hi]
    counts = {"train": n - int(0.1 * n) - int(0.2 * n), "val": int(0.1 * n), "test": int(0.2 * n)}
    out = {}
    for p, count in counts.items():
        sents, tags = [], []
        for _ in range(count):
            template = TEMPLATES[rng.integers(len(TEMPLATES))]
            words: list[str] = []
            labels: list[str] = []
            for piece in _SLOT.split(template):
                if piece in ("PER", "ORG", "LOC", "DATE", "MISC", "ANY"):
                    kind = ("PER", "ORG", "LOC")[rng.integers(3)] if piece == "ANY" else piece
                    pool = split_pools[p][kind]
                    name = pool[rng.integers(len(pool))].split(" ")
                    words += name
                    labels += [f"B-{kind}"] + [f"I-{kind}"] * (len(name) - 1)
                else:
                    toks = piece.split()
                    words += toks
                    labels += ["O"] * len(toks)
            sents.append(words)
            tags.append(labels)
        out[p] = (sents, tags)
    return out


@register_dataset(
    "ner-synth",
    task="tagging",
    description="seeded CoNLL-style sentences, PER/ORG/LOC/DATE/MISC from Faker and Babel; test names unseen",
)
def ner_synth(n: int = 4000, seed: int = 0, unseen: bool = True) -> Dataset:
    """``n`` sentences (70 % train, 10 % validation, 20 % test) in IOB2; with ``unseen`` (the
    default) no entity string of the validation or test split occurs in training."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 30:
        raise InputError(f"Dataset option 'n' must be an int >= 30. Got {n!r} instead.")
    if not isinstance(unseen, bool):
        raise InputError(f"Dataset option 'unseen' must be true or false. Got {unseen!r} instead.")
    check_size("ner-synth", 3000 * n, {"n": n})  # ~20 tokens and tags a sentence as Python strings
    try:
        import faker  # noqa: F401
    except ImportError:
        raise InputError("Dataset 'ner-synth' needs Faker: pip install 'deepatlas[nlp]'") from None
    parts = _synth(n, seed, unseen)
    arrays = []
    for p in ("train", "val", "test"):
        arrays += [as_objects(parts[p][0]), as_objects(parts[p][1])]
    return Dataset(
        "ner-synth",
        "tagging",
        *arrays,
        description="synthetic NER sentences (Faker/Babel entities in templates); "
        + ("test entity names never seen in training" if unseen else "entity names shared across splits"),
        meta={"scheme": "IOB2", "types": list(TYPES), "sentences": True},
    )


# ---- CoNLL files -------------------------------------------------------------------------------------
def read_conll(path: str | Path) -> tuple[list[list[str]], list[list[str]], str]:
    """Sentences, tags and the scheme of a CoNLL file, every tag checked (see the module docstring)."""
    p = Path(path)
    where = f"Data file {str(path)!r}"
    if not p.is_file():
        raise InputError(f"{where} does not exist." if not p.exists() else f"{where} is a folder, not a CoNLL file.")
    try:
        text = p.read_bytes().decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise InputError(f"{where} is not UTF-8 text (byte {exc.start} cannot be decoded).") from None
    sents: list[list[str]] = []
    tags: list[list[str]] = []
    lines: list[list[int]] = []
    cur: tuple[list[str], list[str], list[int]] = ([], [], [])
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0] == "-DOCSTART-":
            if cur[0]:
                sents.append(cur[0]), tags.append(cur[1]), lines.append(cur[2])
            cur = ([], [], [])
            continue
        if len(fields) < 2:
            raise InputError(
                f"{where}: line {number} has {len(fields)} column ({line.strip()[:40]!r}); expected a token and "
                "its tag separated by whitespace (CoNLL: token [other columns] tag)."
            )
        cur[0].append(fields[0])
        cur[1].append(fields[-1])
        cur[2].append(number)
    if cur[0]:
        sents.append(cur[0]), tags.append(cur[1]), lines.append(cur[2])
    if not sents:
        raise InputError(f"{where} has no sentences (only blank or -DOCSTART- lines).")
    scheme = tag_scheme(tags)
    for t, ln in zip(tags, lines):
        check_tag_sequence(t, scheme, where, ln)
    return sents, tags, scheme


def is_conll(path: str | Path) -> bool:
    return str(path).lower().endswith((".conll", ".conllu", ".iob", ".iob2", ".bio", ".bioes"))


def load_conll(path: str | Path, *, val: str | None = None, test: str | None = None, seed: int = 0) -> Dataset:
    """A tagging dataset from a CoNLL file; ``val``/``test`` files when given, else a seeded
    70/10/20 split of its sentences (of what is left for the parts not given)."""
    sents, tags, scheme = read_conll(path)
    given = {}
    for name, other in (("val", val), ("test", test)):
        if other is not None:
            s, t, sch = read_conll(other)
            if sch != scheme:
                raise InputError(f"--{name} file {str(other)!r} uses {sch} tags, but {str(path)!r} uses {scheme}.")
            given[name] = (as_objects(s), as_objects(t))
    X, y = as_objects(sents), as_objects(tags)
    if "val" in given and "test" in given:
        parts = (X, y, *given["val"], *given["test"])
    else:
        if len(X) < 10:
            raise InputError(
                f"Data file {str(path)!r} has {len(X)} sentences; at least 10 are needed to split off "
                "validation and test sentences (or give --val and --test files)."
            )
        Xtr, ytr, Xva, yva, Xte, yte = split(X, y, seed=seed, stratify=False)
        if "val" in given:
            Xtr, ytr = np.concatenate([Xtr, Xva]), np.concatenate([ytr, yva])
            Xva, yva = given["val"]
        if "test" in given:
            Xtr, ytr = np.concatenate([Xtr, Xte]), np.concatenate([ytr, yte])
            Xte, yte = given["test"]
        parts = (Xtr, ytr, Xva, yva, Xte, yte)
    types = sorted({kind for t in tags for kind, _, _ in entity_spans(t)})
    return Dataset(
        str(path),
        "tagging",
        *parts,
        description=f"CoNLL sentences from {path} ({scheme})",
        meta={"scheme": scheme, "types": types, "sentences": True},
    )
