"""``babi``: the project's own seeded generator of bAbI-style question-answering stories.

Weston, Bordes, Chopra, Rush, van Merriënboer, Joulin & Mikolov (2015), "Towards AI-complete
question answering: a set of prerequisite toy tasks", defined 20 tasks; this generator writes five
of them in their format (numbered story lines, a question, a one-word answer, the ids of the
supporting facts). It is not Facebook's generator: the vocabulary, story lengths and distractors
are ours, so scores compare with the paper's only loosely.

====  ======================  ===========================================================
task  name                    question (answer from)
====  ======================  ===========================================================
1     single supporting fact  Where is Mary? (her last move)
2     two supporting facts    Where is the football? (who got it, where they went)
3     three supporting facts  Where was the football before the kitchen? (its last places)
6     yes/no questions        Is Mary in the kitchen? (her last move)
15    basic deduction         What is Gertrude afraid of? (her species, what it fears)
====  ======================  ===========================================================

A sample ``X`` is one string: the story lines numbered from 1, then the numbered question (the
last line, ending in ``?``); ``y`` is the answer; ``Dataset.meta["supports"]`` holds the
supporting-fact ids of each split's samples. :func:`parse_story` reads a sample back and refuses
a story without a question.
"""

from __future__ import annotations

import re

import numpy as np

from deepatlas.data.core import Dataset, register_dataset
from deepatlas.errors import InputError

TASKS = (1, 2, 3, 6, 15)
PEOPLE = ("Mary", "John", "Sandra", "Daniel")
PLACES = ("bathroom", "hallway", "office", "garden", "kitchen", "bedroom")
OBJECTS = ("football", "apple", "milk")
MOVES = ("moved to", "went to", "journeyed to", "travelled to", "went back to")
GRABS = ("picked up", "got", "grabbed", "took")
DROPS = ("dropped", "discarded", "put down", "left")
ANIMALS = {"mouse": "mice", "sheep": "sheep", "wolf": "wolves", "cat": "cats"}
NAMES = ("Gertrude", "Winona", "Emily", "Jessica")


class _World:
    """People, objects and the history of each object's places, with the sentence ids that show them."""

    def __init__(self, rng):
        self.rng = rng
        self.lines: list[str] = []
        self.where: dict[str, tuple[str, int]] = {}  # person -> (place, id of the move)
        self.holder: dict[str, tuple[str, int]] = {}  # object -> (person, id of the grab)
        self.history: dict[str, list[tuple[str, tuple[int, ...]]]] = {o: [] for o in OBJECTS}

    def say(self, text: str) -> int:
        self.lines.append(text)
        return len(self.lines)

    def move(self, person: str) -> None:
        here = self.where.get(person, (None, 0))[0]
        place = str(self.rng.choice([p for p in PLACES if p != here]))
        sid = self.say(f"{person} {self.rng.choice(MOVES)} the {place}.")
        self.where[person] = (place, sid)
        for obj, (who, grab) in self.holder.items():
            if who == person:
                self.history[obj].append((place, (grab, sid)))

    def grab(self, person: str) -> bool:
        if person not in self.where:
            return False
        here = self.where[person][0]
        # An object can be taken where it lies: a new one anywhere, a dropped one where it was left.
        free = [o for o in OBJECTS if o not in self.holder and (not self.history[o] or self.history[o][-1][0] == here)]
        if not free:
            return False
        obj = str(self.rng.choice(free))
        sid = self.say(f"{person} {self.rng.choice(GRABS)} the {obj}.")
        self.holder[obj] = (person, sid)
        place, moved = self.where[person]
        if not self.history[obj] or self.history[obj][-1][0] != place:
            self.history[obj].append((place, (moved, sid)))
        return True

    def drop(self, person: str) -> bool:
        held = [o for o, (who, _) in self.holder.items() if who == person]
        if not held:
            return False
        obj = str(self.rng.choice(held))
        self.say(f"{person} {self.rng.choice(DROPS)} the {obj}.")
        del self.holder[obj]
        return True

    def act(self, p_objects: float) -> None:
        person = str(self.rng.choice(PEOPLE))
        r = self.rng.random()
        if r < p_objects / 2 and self.grab(person):
            return
        if r < p_objects and self.drop(person):
            return
        self.move(person)


def _sample(task: int, rng) -> tuple[list[str], str, str, list[int]]:
    """(story lines, question, answer, supporting-fact ids) of one sample."""
    w = _World(rng)
    if task in (1, 6):
        for _ in range(int(rng.integers(2, 11))):
            w.move(str(rng.choice(PEOPLE)))
        person = str(rng.choice(sorted(w.where)))
        place, sid = w.where[person]
        if task == 1:
            return w.lines, f"Where is {person}?", place, [sid]
        asked = place if rng.random() < 0.5 else str(rng.choice([p for p in PLACES if p != place]))
        return w.lines, f"Is {person} in the {asked}?", "yes" if asked == place else "no", [sid]
    if task == 15:
        species = list(ANIMALS)
        fears = {s: str(rng.choice([t for t in species if t != s])) for s in species}
        facts = [f"{ANIMALS[s].capitalize()} are afraid of {ANIMALS[fears[s]]}." for s in species]
        names = list(rng.permutation(NAMES))
        kinds = {n: str(rng.choice(species)) for n in names}
        facts += [f"{n} is a {kinds[n]}." for n in names]
        order = rng.permutation(len(facts))
        lines = [facts[i] for i in order]
        name = str(rng.choice(names))
        kind = kinds[name]
        support = sorted([lines.index(f"{name} is a {kind}.") + 1, lines.index(facts[species.index(kind)]) + 1])
        return lines, f"What is {name} afraid of?", fears[kind], support
    # tasks 2 and 3: people move and carry objects until the question can be asked
    low, high = (6, 21) if task == 2 else (8, 31)
    target = int(rng.integers(low, high))
    need = 1 if task == 2 else 2
    while True:
        w.act(0.45)
        ready = [o for o in OBJECTS if len(w.history[o]) >= need]
        if len(w.lines) >= target and ready:
            break
        if len(w.lines) > 60:  # very unlikely; start a fresh world
            w = _World(rng)
    obj = str(rng.choice(ready))
    hist = w.history[obj]
    if task == 2:
        place, ids = hist[-1]
        return w.lines, f"Where is the {obj}?", place, sorted(ids)
    (before, ids1), (last, ids2) = hist[-2], hist[-1]
    return w.lines, f"Where was the {obj} before the {last}?", before, sorted(set(ids1) | set(ids2))


def format_sample(lines: list[str], question: str) -> str:
    """The story lines and the question, numbered from 1, one per line (bAbI's layout)."""
    return "\n".join(f"{i} {s}" for i, s in enumerate([*lines, question], start=1))


def generate(task: int, n: int, seed: int):
    """``n`` samples of ``task``: (texts, answers, supporting ids, story lines, questions)."""
    rng = np.random.default_rng([seed, task])
    texts, answers, supports = [], [], []
    for _ in range(n):
        lines, question, answer, support = _sample(task, rng)
        texts.append(format_sample(lines, question))
        answers.append(answer)
        supports.append(support)
    return texts, answers, supports


_NUMBERED = re.compile(r"^\s*(\d+)\s+(.*\S)\s*$")


def parse_story(text, where: str = "X") -> tuple[list[str], str]:
    """A sample's (story sentences, question); one line naming ``where`` when it is not a story
    followed by a question."""
    if not isinstance(text, str):
        raise InputError(f"{where} must be a story (a str of lines, the last one a question). Got {text!r} instead.")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise InputError(f"{where} is empty; expected story lines and a question.")
    sentences = []
    for ln in lines:
        m = _NUMBERED.match(ln)
        sentences.append(m.group(2) if m else ln.strip())
    if not sentences[-1].endswith("?"):
        raise InputError(f"{where}: the story has no question; its last line must be the question, ending in '?'.")
    return sentences[:-1], sentences[-1]


@register_dataset(
    "babi",
    task="qa",
    description="bAbI-style stories, tasks 1, 2, 3, 6, 15 (our own seeded generator): 1,000 train / 1,000 test",
)
def babi(task: int = 1, n_train: int = 1000, n_test: int = 1000, seed: int = 0) -> Dataset:
    if task not in TASKS:
        raise InputError(
            f"Dataset option 'task' of 'babi' must be one of {', '.join(map(str, TASKS))}. Got {task!r} instead."
        )
    for key, value in (("n_train", n_train), ("n_test", n_test)):
        if not isinstance(value, int) or isinstance(value, bool) or not 20 <= value <= 100000:
            raise InputError(f"Dataset option {key!r} of 'babi' must be an int in [20, 100000]. Got {value!r} instead.")
    texts, answers, supports = generate(task, n_train + n_test, seed)
    n_val = n_train // 10  # the paper's 10 % of the training set for validation
    cut = n_train - n_val

    def arr(items):
        return np.array(items, dtype=object)

    return Dataset(
        "babi",
        "qa",
        arr(texts[:cut]),
        arr(answers[:cut]),
        arr(texts[cut:n_train]),
        arr(answers[cut:n_train]),
        arr(texts[n_train:]),
        arr(answers[n_train:]),
        description=f"bAbI-style task {task}: {n_train} training (10 % kept for validation) and {n_test} test questions",
        feature_names=["story"],
        target_name="answer",
        meta={
            "babi_task": task,
            "supports": {"train": supports[:cut], "val": supports[cut:n_train], "test": supports[n_train:]},
        },
    )
