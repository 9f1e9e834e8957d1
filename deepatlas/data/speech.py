"""Spoken digits synthesised offline with eSpeak NG, and the user's own recordings.

``spoken-digits`` renders English digit words with eSpeak NG (Duddington et al., the formant
synthesiser of the eSpeak NG project, https://github.com/espeak-ng/espeak-ng): single digits
(``kind=words``, keyword spotting, classes 0-9) or strings of 1-7 digits with optional pauses
(``kind=strings``, transcription for CTC). A *speaker* is an English voice (accent) combined with
a voice variant (``en-us+f3``, ``en-gb-scotland+klatt2``, ...); every utterance also draws a
speaking rate, a pitch and a pitch range. The speakers are split three ways before anything is
drawn: the test utterances come from speakers never heard in training, the validation ones (for
early stopping) from a third group, so the scores measure generalisation to new voices.

Background noise is mixed in when the set is loaded, never cached: coloured noise (a random
spectral slope between white and brown) at a signal-to-noise ratio measured against the whole
utterance. The training split is multi-condition (each utterance clean or at 30, 20, 15, 10 or
5 dB, ``train_snr=mixed``); validation and test are at ``snr`` (``clean`` or a number of dB).

The clean renderings are cached as 16 kHz WAV files (``soundfile``) with a ``labels.json`` under
``$DEEPATLAS_CACHE/spoken-digits/<key>/`` (default ``~/.cache/deepatlas``), the key a hash of the
options that change the audio and of the synthesiser's version; the folder is written under a
temporary name and renamed, so an interrupted render leaves nothing half-made.

eSpeak NG comes from the ``espeakng-loader`` package (``pip install 'deepatlas[speech]'``: it
carries the library and its voice data, nothing else is needed) or, failing that, from the
system's ``libespeak-ng`` (Debian: ``apt-get install espeak-ng``). Each render runs in a fresh
spawned process: the synthesiser keeps state from one utterance to the next (its pitch flutter),
so only a fixed order from a fresh start gives the same audio for the same seed.

The user's own data: a folder of WAV files with a ``transcripts.csv`` (columns ``file`` and
``transcript``). Files of another sample rate are resampled to 16 kHz and stereo files mixed
down, each with a one-line note on stderr; an empty or unreadable file is one line naming it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import json
import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np

from deepatlas.data.core import Dataset, csv_rows, register_dataset, split
from deepatlas.errors import DeepAtlasError, InputError

SAMPLE_RATE = 16000
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ENGLISH_VOICES = (
    "en",
    "en-us",
    "en-gb-scotland",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
    "en-gb-x-rp",
    "en-029",
)
"""The English voices (accents) of eSpeak NG that both its PyPI build and Debian's carry."""
TRAIN_SNRS = (None, 30.0, 20.0, 15.0, 10.0, 5.0)
"""The conditions of a multi-condition training split (``None``: clean)."""
_RENDER_VERSION = 1  # bump when the rendering recipe changes (part of the cache key)
_HINT = (
    "the spoken-digits data needs eSpeak NG: pip install 'deepatlas[speech]' (the espeakng-loader package) "
    "or install the system package (apt-get install espeak-ng)"
)


class MissingSynthesizer(DeepAtlasError, ImportError):
    """Neither espeakng-loader nor a system libespeak-ng is available."""


# ---- the synthesiser -------------------------------------------------------------------------
def find_espeak() -> tuple[str, str | None, str]:
    """``(library path, data path or None, backend name)``: espeakng-loader first, then the system's."""
    try:
        import espeakng_loader

        return espeakng_loader.get_library_path(), espeakng_loader.get_data_path(), "espeakng-loader"
    except (ImportError, RuntimeError):
        pass
    lib = ctypes.util.find_library("espeak-ng")
    if lib is None:
        raise MissingSynthesizer(_HINT[0].upper() + _HINT[1:] + ".")
    return lib, None, "system"


def _variants(data_path: str | None) -> list[str]:
    """Voice variants shipped with the synthesiser's data (the files of ``voices/!v``)."""
    roots = [data_path] if data_path else []
    roots += ["/usr/lib/x86_64-linux-gnu/espeak-ng-data", "/usr/lib/aarch64-linux-gnu/espeak-ng-data"]
    roots += ["/usr/share/espeak-ng-data", "/usr/local/share/espeak-ng-data"]
    for root in roots:
        folder = Path(root) / "voices" / "!v"
        if folder.is_dir():
            return sorted(p.name for p in folder.iterdir() if p.is_file() and " " not in p.name)
    return ["f1", "f2", "f3", "f4", "m1", "m2", "m3", "m4", "m5", "m6", "m7"]  # eSpeak's long-standing variants


class _Espeak:
    """eSpeak NG through its C API (``speak_lib.h``) in synchronous mode: text in, 16-bit samples out."""

    def __init__(self) -> None:
        lib_path, data_path, self.backend = find_espeak()
        self.lib = ctypes.CDLL(lib_path)
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.rate = self.lib.espeak_Initialize(2, 0, data_path.encode() if data_path else None, 0x8000)
        if self.rate <= 0:
            raise MissingSynthesizer(f"eSpeak NG ({lib_path}) could not start; {_HINT}.")
        self._chunks: list[np.ndarray] = []
        callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)

        def collect(wav, n, _events):
            if n > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            return 0

        self._callback = callback_type(collect)  # kept alive as long as the library may call it
        self.lib.espeak_SetSynthCallback(self._callback)
        if hasattr(self.lib, "espeak_ng_SetRandSeed"):
            self.lib.espeak_ng_SetRandSeed(ctypes.c_long(0))

    def say(self, ssml: str, voice: str, rate: int, pitch: int, pitch_range: int) -> np.ndarray:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise InputError(f"eSpeak NG has no voice {voice!r}.")
        for param, value in ((1, rate), (3, pitch), (4, pitch_range)):  # espeakRATE, espeakPITCH, espeakRANGE
            self.lib.espeak_SetParameter(param, value, 0)
        self._chunks = []
        text = ssml.encode()
        self.lib.espeak_Synth(text, len(text) + 1, 0, 1, 0, 0x1 | 0x10, None, None)  # UTF-8, SSML
        self.lib.espeak_Synchronize()
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


def synth_version() -> str:
    """The backend and the library file (its size and name): part of the cache key."""
    lib_path, _, backend = find_espeak()
    resolved = Path(lib_path).resolve() if Path(lib_path).exists() else Path(lib_path)
    size = resolved.stat().st_size if resolved.exists() else 0
    return f"{backend}:{resolved.name}:{size}"


def _render_worker(items: list[dict], folder: str) -> None:
    """Run in a fresh process: render every item in order and write ``<i>.wav`` at 16 kHz."""
    import soundfile as sf
    from scipy.signal import resample_poly

    engine = _Espeak()
    g = math.gcd(SAMPLE_RATE, engine.rate)
    for i, item in enumerate(items):
        raw = engine.say(item["ssml"], item["voice"], item["rate"], item["pitch"], item["range"])
        wave = resample_poly(raw.astype(np.float32) / 32768.0, SAMPLE_RATE // g, engine.rate // g)
        lead = np.zeros(item["lead"], np.float32)
        wave = np.concatenate([lead, wave.astype(np.float32), np.zeros(item["tail"], np.float32)])
        sf.write(os.path.join(folder, f"{i:06d}.wav"), np.clip(wave, -1, 1), SAMPLE_RATE, subtype="PCM_16")


def render(items: list[dict], folder: Path) -> None:
    """Render ``items`` into ``folder`` in a spawned process (same items -> same samples)."""
    import multiprocessing as mp

    find_espeak()  # one line before a process starts when there is no synthesiser
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        pool.apply(_render_worker, (items, str(folder)))


# ---- the utterances --------------------------------------------------------------------------
def speakers(data_path: str | None = None) -> list[str]:
    """Every voice/variant combination, ``en-us+f3``-style, in a fixed order."""
    if data_path is None:
        try:
            data_path = find_espeak()[1]
        except MissingSynthesizer:
            data_path = None
    return [f"{v}+{variant}" for v in ENGLISH_VOICES for variant in _variants(data_path)]


def speaker_groups(names: list[str], seed: int, val: float = 0.1, test: float = 0.2) -> dict[str, list[str]]:
    """Disjoint train / val / test speakers, a seeded permutation of ``names``."""
    order = np.random.default_rng([seed, 7]).permutation(len(names))
    n_test, n_val = max(1, round(test * len(names))), max(1, round(val * len(names)))
    pick = [names[i] for i in order]
    return {"test": pick[:n_test], "val": pick[n_test : n_test + n_val], "train": pick[n_test + n_val :]}


def utterance_plan(kind: str, n: int, seed: int, max_digits: int = 7, pauses: bool = True) -> list[dict]:
    """What each utterance says and how: split, speaker, text (SSML), rate, pitch, silences."""
    groups = speaker_groups(speakers(), seed)
    rng = np.random.default_rng([seed, 1])
    n_test, n_val = round(0.2 * n), round(0.1 * (n - round(0.2 * n)))
    splits = ["test"] * n_test + ["val"] * n_val + ["train"] * (n - n_test - n_val)
    items = []
    for i, part in enumerate(splits):
        names = groups[part]
        speaker = names[int(rng.integers(len(names)))]
        length = 1 if kind == "words" else int(rng.integers(1, max_digits + 1))
        digits = rng.integers(0, 10, size=length)
        words = []
        for j, d in enumerate(digits):
            if j and pauses and rng.random() < 0.3:
                words.append(f'<break time="{int(rng.integers(100, 500))}ms"/>')
            words.append(DIGIT_WORDS[d])
        items.append(
            {
                "index": i,
                "split": part,
                "speaker": speaker,
                "voice": speaker,
                "label": "".join(str(d) for d in digits),
                "ssml": "<speak>" + " ".join(words) + "</speak>",
                "rate": int(rng.integers(120, 221)),
                "pitch": int(rng.integers(25, 76)),
                "range": int(rng.integers(20, 81)),
                "lead": int(rng.integers(0, SAMPLE_RATE // 5)),  # up to 0.2 s of silence on each side
                "tail": int(rng.integers(0, SAMPLE_RATE // 5)),
            }
        )
    return items


def cache_root() -> Path:
    root = os.environ.get("DEEPATLAS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "deepatlas")
    return Path(root) / "spoken-digits"


def rendered(kind: str, n: int, seed: int, max_digits: int, pauses: bool, root: Path | None = None) -> Path:
    """The cached folder of the clean set (rendered first when missing): WAVs and labels.json."""
    options = {"kind": kind, "n": n, "seed": seed, "max_digits": max_digits, "pauses": pauses}
    key_text = json.dumps({**options, "synth": synth_version(), "recipe": _RENDER_VERSION}, sort_keys=True)
    key = hashlib.sha256(key_text.encode()).hexdigest()[:16]
    root = root or cache_root()
    folder = root / f"{kind}-n{n}-seed{seed}-{key}"
    if (folder / "labels.json").exists():
        return folder
    items = utterance_plan(kind, n, seed, max_digits, pauses)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".{folder.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        render(items, tmp)
        labels = {"options": options, "synth": synth_version(), "sample_rate": SAMPLE_RATE, "utterances": items}
        (tmp / "labels.json").write_text(json.dumps(labels))
        try:
            os.replace(tmp, folder)  # atomic: the folder appears complete or not at all
        except OSError:  # another process finished first
            if not (folder / "labels.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


# ---- noise -----------------------------------------------------------------------------------
def coloured_noise(n: int, slope: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose power falls as ``1/f**slope`` (0 white, 1 pink, 2 brown), unit power."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1] if n > 1 else 1.0
    noise = np.fft.irfft(spectrum / f ** (slope / 2), n)
    return (noise / (np.sqrt(np.mean(noise**2)) + 1e-12)).astype(np.float32)


def add_noise(wave: np.ndarray, snr_db: float | None, rng: np.random.Generator) -> np.ndarray:
    """``wave`` plus coloured noise at ``snr_db`` (power ratio over the whole utterance); ``None``: clean."""
    if snr_db is None or len(wave) == 0:
        return wave
    power = float(np.mean(wave.astype(np.float64) ** 2))
    noise = coloured_noise(len(wave), float(rng.uniform(0.0, 2.0)), rng)
    return (wave + np.sqrt(power / 10 ** (snr_db / 10)) * noise).astype(np.float32)


def _parse_snr(value, name: str):
    if value is None or (isinstance(value, str) and value.lower() == "clean"):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise InputError(f"Dataset option {name!r} must be 'clean' or a number of dB. Got {value!r} instead.")


def _objects(arrays: list[np.ndarray]) -> np.ndarray:
    out = np.empty(len(arrays), dtype=object)
    for i, a in enumerate(arrays):
        out[i] = a
    return out


@register_dataset(
    "spoken-digits",
    task="classification",
    description="eSpeak NG digits: kind=words (keyword spotting) or kind=strings (1-7 digits, CTC); "
    "test voices unseen in training; noise at snr dB",
)
def spoken_digits(
    kind: str = "words",
    n: int = 3000,
    snr=20,
    train_snr: str = "mixed",
    max_digits: int = 7,
    pauses: bool = True,
    seed: int = 0,
) -> Dataset:
    if kind not in ("words", "strings"):
        raise InputError(f"Dataset option 'kind' must be 'words' or 'strings'. Got {kind!r} instead.")
    if not isinstance(n, int) or isinstance(n, bool) or n < 30:
        raise InputError(f"Dataset option 'n' must be an int >= 30. Got {n!r} instead.")
    if not isinstance(max_digits, int) or isinstance(max_digits, bool) or not 1 <= max_digits <= 20:
        raise InputError(f"Dataset option 'max_digits' must be an int in [1, 20]. Got {max_digits!r} instead.")
    if not isinstance(pauses, bool):
        raise InputError(f"Dataset option 'pauses' must be true or false. Got {pauses!r} instead.")
    snr_db = _parse_snr(snr, "snr")
    train_fixed = None if train_snr == "mixed" else _parse_snr(train_snr, "train_snr")
    from deepatlas.data.core import check_size

    check_size("spoken-digits", n * (1 if kind == "words" else 4) * 2 * SAMPLE_RATE * 4, {"kind": kind, "n": n})
    folder = rendered(kind, n, seed, max_digits if kind == "strings" else 1, pauses)
    return _load_rendered(folder, kind, snr_db, train_snr, train_fixed, seed)


def _load_rendered(folder: Path, kind: str, snr_db, train_snr, train_fixed, seed: int) -> Dataset:
    import soundfile as sf

    meta = json.loads((folder / "labels.json").read_text())
    parts: dict[str, tuple[list, list, list]] = {"train": ([], [], []), "val": ([], [], []), "test": ([], [], [])}
    for item in meta["utterances"]:
        i, part = item["index"], item["split"]
        wave, _ = sf.read(folder / f"{i:06d}.wav", dtype="float32")
        rng = np.random.default_rng([seed, 2, i])
        if part == "train":
            level = TRAIN_SNRS[int(rng.integers(len(TRAIN_SNRS)))] if train_snr == "mixed" else train_fixed
        else:
            level = snr_db
        parts[part][0].append(add_noise(wave, level, rng))
        parts[part][1].append(int(item["label"]) if kind == "words" else item["label"])
        parts[part][2].append(item["speaker"])

    def ys(values):
        return np.array(values, dtype=np.int64) if kind == "words" else np.array(values, dtype=object)

    arrays = []
    for part in ("train", "val", "test"):
        arrays += [_objects(parts[part][0]), ys(parts[part][1])]
    snr_text = "clean" if snr_db is None else f"{snr_db:g} dB"
    what = "single digits (keyword spotting)" if kind == "words" else "digit strings (CTC)"
    return Dataset(
        "spoken-digits",
        "classification" if kind == "words" else "sequence",
        *arrays,
        description=f"eSpeak NG {what}, 16 kHz waveforms; validation and test voices unseen in training; "
        f"test noise {snr_text}",
        meta={
            "sample_rate": SAMPLE_RATE,
            "kind": kind,
            "snr": snr_db,
            "speakers": {p: sorted(set(parts[p][2])) for p in parts},
            "cache": str(folder),
            "synth": meta["synth"],
        },
    )


# ---- reading WAV files -----------------------------------------------------------------------
def _note(message: str) -> None:
    print(f"note: {message}", file=sys.stderr)


def read_wav(path: str | Path, sample_rate: int = SAMPLE_RATE, *, what: str = "WAV file") -> np.ndarray:
    """A mono float32 waveform at ``sample_rate``: other rates resampled and several channels mixed
    down (one note each on stderr); a missing, empty, silent-length or unreadable file is one line."""
    import soundfile as sf

    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} {str(path)!r} does not exist.")
    if p.is_dir():
        raise InputError(f"{what} {str(path)!r} is a folder; expected a .wav file.")
    if p.stat().st_size == 0:
        raise InputError(f"{what} {str(path)!r} is empty (0 bytes).")
    try:
        wave, rate = sf.read(p, dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile.LibsndfileError, RuntimeError, ...
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{what} {str(path)!r} cannot be read as audio: {reason}.") from None
    return as_mono(wave, rate, sample_rate, str(path))


def decode_wav_bytes(data: bytes, sample_rate: int = SAMPLE_RATE, name: str = "the WAV bytes") -> np.ndarray:
    """:func:`read_wav` for bytes in memory (a request body)."""
    import io

    import soundfile as sf

    if not data:
        raise InputError(f"{name} are empty.")
    try:
        wave, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{name} cannot be read as audio: {reason}.") from None
    return as_mono(wave, rate, sample_rate, name)


def as_mono(wave: np.ndarray, rate: int, sample_rate: int, name: str) -> np.ndarray:
    """(frames, channels) at ``rate`` -> (frames,) at ``sample_rate``, with notes for each change."""
    if len(wave) == 0:
        raise InputError(f"{name} holds no samples (zero length); an utterance needs audio.")
    if not np.isfinite(wave).all():
        raise InputError(f"{name} contains NaN or infinite samples.")
    if wave.shape[1] > 1:
        _note(f"{name}: {wave.shape[1]} channels mixed down to mono.")
        wave = wave.mean(axis=1, keepdims=True)
    wave = wave[:, 0]
    if rate != sample_rate:
        from scipy.signal import resample_poly

        _note(f"{name}: resampled from {rate} Hz to {sample_rate} Hz.")
        g = math.gcd(int(rate), sample_rate)
        wave = resample_poly(wave, sample_rate // g, int(rate) // g).astype(np.float32)
    return np.ascontiguousarray(wave, dtype=np.float32)


def looks_like_wav_folder(p: Path) -> bool:
    return p.is_dir() and (p / "transcripts.csv").is_file()


def load_wav_folder(root: Path, *, task: str | None = None, seed: int = 0) -> Dataset:
    """A folder of WAV files with ``transcripts.csv`` (``file,transcript``): transcription
    (``task=sequence``, the default) or, with ``task=classification``, transcripts as classes."""
    table = root / "transcripts.csv"
    with open(table, newline="", encoding="utf-8") as f:
        rows = csv_rows(f, str(table))
    if not rows or [c.strip().lower() for c in rows[0][:2]] != ["file", "transcript"]:
        raise InputError(f"{str(table)!r} must start with the header 'file,transcript'.")
    waves, labels = [], []
    for k, row in enumerate(rows[1:], 2):
        if len(row) < 2:
            raise InputError(f"{str(table)!r}, row {k}: expected 'file,transcript'. Got {row!r} instead.")
        waves.append(read_wav(root / row[0].strip(), what=f"WAV file (row {k} of {str(table)!r})"))
        labels.append(row[1].strip())
    if len(waves) < 10:
        raise InputError(f"{str(table)!r} lists {len(waves)} files; at least 10 are needed for a split.")
    task = task or "sequence"
    if task not in ("sequence", "classification"):
        raise InputError(f"A folder of WAV files takes task 'sequence' or 'classification'. Got {task!r} instead.")
    X = _objects(waves)
    y = np.array(labels, dtype=object)
    if task == "classification":
        y = np.array([int(v) if v.isdigit() else v for v in labels])
    parts = split(X, y, seed=seed, stratify=task == "classification")
    return Dataset(
        str(root),
        task,
        *parts,
        description=f"{len(waves)} WAV files at {SAMPLE_RATE} Hz with transcripts",
        meta={"sample_rate": SAMPLE_RATE},
    )
