"""Speech (issue #23): the eSpeak NG spoken-digits data, audio features, the keyword spotter and
the CTC transcriber on audio, WAV input."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

speech = pytest.importorskip("deepatlas.data.speech")
pytest.importorskip("soundfile")
pytest.importorskip("librosa")
pytest.importorskip("jiwer")

from deepatlas.errors import InputError  # noqa: E402
from deepatlas.models.speech.ctc import transcript_metrics  # noqa: E402
from deepatlas.models.speech.features import AudioFeatures, dct_matrix, spec_augment  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

try:
    speech.find_espeak()
    HAVE_ESPEAK = True
except speech.MissingSynthesizer:
    HAVE_ESPEAK = False
needs_espeak = pytest.mark.skipif(not HAVE_ESPEAK, reason="eSpeak NG is not installed")


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("speech-cache")


@pytest.fixture(scope="module")
def words(cache):
    from deepatlas.data.speech import _load_rendered, rendered

    folder = rendered("words", 600, 0, 1, True, root=cache)
    return _load_rendered(folder, "words", None, "mixed", None, 0)  # clean validation and test clips


# ---- the data ----------------------------------------------------------------------------------
@needs_espeak
def test_the_synthesiser_is_deterministic_for_a_seed(tmp_path):
    import soundfile as sf

    items = speech.utterance_plan("strings", 40, seed=3)[:6]
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    speech.render(items, a)
    speech.render(items, b)
    for i in range(6):
        wa, _ = sf.read(a / f"{i:06d}.wav", dtype="int16")
        wb, _ = sf.read(b / f"{i:06d}.wav", dtype="int16")
        assert len(wa) > 4000 and np.array_equal(wa, wb)
    other = speech.utterance_plan("strings", 40, seed=4)[:6]
    assert [x["label"] for x in other] != [x["label"] for x in items]  # another seed, other utterances


def test_train_validation_and_test_speakers_are_disjoint():
    groups = speech.speaker_groups(speech.speakers(), seed=0)
    train, val, test = (set(groups[k]) for k in ("train", "val", "test"))
    assert not train & test and not train & val and not val & test
    assert len(test) >= 0.15 * len(train | val | test)
    plan = speech.utterance_plan("strings", 300, seed=0)
    heard = {p["speaker"] for p in plan if p["split"] == "train"}
    assert heard <= train and not heard & {p["speaker"] for p in plan if p["split"] == "test"}
    assert all(1 <= len(p["label"]) <= 7 for p in plan) and max(len(p["label"]) for p in plan) == 7


@needs_espeak
def test_the_rendered_set_is_cached_with_labels_and_its_test_voices_are_unseen(words, cache):
    assert words.task == "classification" and len(words.X_test) == 120
    assert set(words.y_train) == set(range(10))
    assert not set(words.meta["speakers"]["train"]) & set(words.meta["speakers"]["test"])
    folder = next(p for p in (cache).iterdir() if p.name.startswith("words-n600"))
    assert (folder / "labels.json").exists() and len(list(folder.glob("*.wav"))) == 600
    assert not [p for p in cache.iterdir() if ".tmp-" in p.name]  # the atomic rename left nothing behind


def test_noise_is_mixed_at_the_asked_snr():
    rng = np.random.default_rng(0)
    wave = np.sin(np.linspace(0, 800, 16000)).astype(np.float32)
    for snr in (20.0, 5.0, 0.0):
        noisy = speech.add_noise(wave, snr, rng)
        measured = 10 * np.log10(np.mean(wave**2) / np.mean((noisy - wave) ** 2))
        assert abs(measured - snr) < 0.01
    assert speech.add_noise(wave, None, rng) is wave


# ---- features ----------------------------------------------------------------------------------
def test_log_mel_and_mfcc_frames():
    wave = torch.from_numpy(np.random.default_rng(0).normal(size=(2, 16000)).astype(np.float32))
    logmel = AudioFeatures("logmel", n_mels=40, hop=160)(wave)
    assert logmel.shape == (2, 101, 40)
    mfcc = AudioFeatures("mfcc", n_mels=40, n_mfcc=13, hop=160)(wave)
    assert mfcc.shape == (2, 101, 13)
    from scipy.fft import dct

    expected = dct(logmel.numpy(), type=2, norm="ortho", axis=-1)[..., :13]
    np.testing.assert_allclose(mfcc.numpy(), expected, atol=1e-4)
    assert dct_matrix(13, 40).shape == (13, 40)
    silent = AudioFeatures("logmel", n_mels=40, hop=160)
    np.testing.assert_allclose(silent(torch.zeros(1, 1600))[0, 3].numpy(), silent.silence(), atol=1e-5)


def test_spec_augment_masks_bands_and_spans_only_while_training():
    torch.manual_seed(0)
    x = torch.ones(8, 100, 40)
    out = spec_augment(x, 2, 6, 2, 8)
    zero = out == 0
    assert 0 < zero.float().mean() < 0.5
    for b in range(8):  # a masked frequency is masked in every frame, or a masked frame in every band
        z = zero[b]
        assert torch.equal(z, z.all(1)[:, None] | z.all(0)[None, :])
    assert torch.equal(spec_augment(x, 0, 6, 0, 8), x)


# ---- metrics -----------------------------------------------------------------------------------
def test_error_rates_of_the_reference_are_zero_and_of_a_known_mistake_exact():
    refs = ["123", "4", "5567890"]
    assert transcript_metrics(refs, refs) == {"cer": 0.0, "wer": 0.0, "string_accuracy": 1.0}
    m = transcript_metrics(["124", "", "5567890"], refs)
    assert m["cer"] == pytest.approx(2 / 11) and m["wer"] == pytest.approx(2 / 11)
    assert m["string_accuracy"] == pytest.approx(1 / 3)


# ---- models ------------------------------------------------------------------------------------
def test_the_subsampling_convolution_gives_ceil_of_frames_over_stride():
    from deepatlas.models.speech.ctc import ConvSubsample, subsampled_steps

    for stride in (2, 3, 4):
        conv = ConvSubsample(5, 7, stride)
        for T in (1, 2, 3, 4, 5, 9, 10, 101):
            assert conv(torch.zeros(2, T, 5)).shape == (2, -(-T // stride), 7)
            assert subsampled_steps(T, stride) == -(-T // stride)


def test_a_strided_transcriber_emits_one_step_per_stride_frames_and_refuses_too_short_utterances():
    from deepatlas.models.speech.ctc import SpeechCTC

    t = np.arange(16000) / 16000
    waves = [(0.3 * np.sin(2 * np.pi * (200 + 100 * i) * t[: 6000 + 2000 * i])).astype(np.float32) for i in range(4)]
    tiny = {"hidden_size": 4, "n_mels": 8, "epochs": 1, "conv_channels": 6, "early_stopping": False}
    model = SpeechCTC(stride=2, **tiny).fit(waves, ["1", "22", "3", "45"])
    log_probs, steps = model._run(waves)
    frames = np.array([1 + len(w) // 320 for w in waves])  # 20 ms hop, centred frames
    assert list(steps) == list(-(-frames // 2)) and log_probs.shape == (4, -(-frames.max() // 2), 6)
    assert model.predict_log_proba(waves[:1]).shape == (1, -(-frames[0] // 2), 6)
    np.testing.assert_allclose(log_probs[0, steps[0] :, 0], 0.0)  # beyond a row's steps: blank for certain
    assert len(model.predict(waves, decoder="beam")) == 4
    # 0.1 s at a 20 ms hop is 6 frames, 2 steps at stride 4: "112" needs 4 (a blank between the ones)
    short = [np.full(1600, 0.1, np.float32), waves[1]]
    with pytest.raises(InputError) as err:
        SpeechCTC(stride=4, **tiny).fit(short, ["112", "1"])
    assert str(err.value) == (
        "y[0] = '112' needs at least 4 CTC steps, but utterance 0 of X gives 2 (6 frames of 20 ms, stride 4); "
        "use a longer recording, a smaller stride or a smaller hop_ms."
    )
    unstrided = SpeechCTC(stride=1, **tiny).fit(short, ["112", "1"])  # 6 steps without the stride: enough
    tensors, meta = unstrided._fitted_state()  # a run saved before `stride` existed loads with the default 2
    restored = SpeechCTC(**tiny)
    restored._restore_state({k: torch.as_tensor(v) for k, v in tensors.items()}, meta)
    assert restored.stride == 1
    np.testing.assert_allclose(restored.predict_log_proba(short), unstrided.predict_log_proba(short), atol=1e-6)


@needs_espeak
def test_a_short_keyword_run_beats_an_untrained_one(words):
    from deepatlas.models.speech.kws import SpeechCNN

    params = {"channels": (8, 16), "n_mels": 24, "batch_size": 16, "early_stopping": False}
    untrained = SpeechCNN(epochs=1, lr=1e-9, **params).fit(words.X_train, words.y_train)
    trained = SpeechCNN(epochs=15, lr=1e-2, **params).fit(words.X_train, words.y_train)
    before, after = untrained.score(words.X_test, words.y_test), trained.score(words.X_test, words.y_test)
    assert before < 0.2 and after > before + 0.15, (before, after)  # measured: 0.125 -> 0.358 (15 epochs, 420 clips)
    again = SpeechCNN(epochs=15, lr=1e-2, **params).fit(words.X_train, words.y_train)
    np.testing.assert_array_equal(again.predict_proba(words.X_test[:5]), trained.predict_proba(words.X_test[:5]))


# ---- reading WAV files -------------------------------------------------------------------------
def _wav(path, data, rate):
    import soundfile as sf

    sf.write(path, data, rate)
    return path


def test_wav_input_is_resampled_and_mixed_down_with_notes(tmp_path, capsys):
    t = np.arange(8000) / 8000
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    out = speech.read_wav(_wav(tmp_path / "a.wav", tone, 8000))
    assert out.shape == (16000,) and out.dtype == np.float32
    assert "resampled from 8000 Hz to 16000 Hz" in capsys.readouterr().err
    stereo = np.stack([tone, -tone * 0], axis=1)
    out = speech.read_wav(_wav(tmp_path / "s.wav", stereo, 16000))
    assert out.shape == (8000,) and np.allclose(out, tone / 2, atol=1e-4)
    assert "2 channels mixed down to mono" in capsys.readouterr().err


def test_bad_wav_files_are_one_line(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=r"is empty \(0 bytes\)"):
        speech.read_wav(empty)
    zero = _wav(tmp_path / "zero.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(InputError, match="holds no samples"):
        speech.read_wav(zero)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 4)
    with pytest.raises(InputError, match="cannot be read as audio"):
        speech.read_wav(corrupt)
    with pytest.raises(InputError, match="cannot be read as audio"):
        speech.decode_wav_bytes(b"not a wav")
    buf = io.BytesIO()
    import soundfile as sf

    sf.write(buf, np.zeros(100, np.float32), 16000, format="WAV")
    assert speech.decode_wav_bytes(buf.getvalue()).shape == (100,)


def test_the_convolutional_stft_equals_torch_stft():
    front = AudioFeatures("logmel", n_mels=40, hop=160)
    wave = torch.from_numpy(np.random.default_rng(1).normal(size=(3, 12345)).astype(np.float32))
    spec = torch.stft(wave, 512, 160, 400, torch.hann_window(400), center=True, return_complex=True)
    expected = torch.log(torch.matmul(front.mel, spec.abs() ** 2) + 1e-6).transpose(1, 2)
    torch.testing.assert_close(front(wave), expected, atol=2e-4, rtol=1e-4)


# ---- a run: predict on a WAV, export with a dynamic time axis, serve base64 WAV -------------------
@needs_espeak
def test_a_transcriber_run_predicts_a_wav_exports_and_serves_base64_wav(cache, tmp_path, monkeypatch):
    import base64

    import soundfile as sf

    from deepatlas.cli import main
    from deepatlas.export.pipeline import export
    from deepatlas.predict import predict_file

    monkeypatch.setattr(speech, "cache_root", lambda: cache)
    run = tmp_path / "run"
    argv = ["train", "speech-ctc", "--data", "spoken-digits:kind=strings,n=60", "--out", str(run), "--quiet"]
    assert main([*argv, "--set", "hidden_size=8", "--set", "n_mels=16", "--epochs", "2"]) == 0
    metrics = __import__("json").loads((run / "metrics.json").read_text())
    assert {"test_cer", "test_wer", "test_string_accuracy", "test_cer_beam"} <= set(metrics)
    wave = np.sin(np.arange(12000) / 5).astype(np.float32) * 0.3
    wav = tmp_path / "utterance.wav"
    sf.write(wav, wave, 16000)
    out = predict_file(run, wav)
    assert out.splitlines()[0] == "file,prediction" and out.splitlines()[1].startswith("utterance.wav,")
    result = export(str(run), run / "model.onnx", exporter="torchscript")
    assert result.parity["random"]["max_abs_diff"] < 1e-3  # a longer input than the example (dynamic time) too
    assert result.parity["held_out"]["rows"] > 0
    from fastapi.testclient import TestClient

    from deepatlas.serving.app import create_app

    client = TestClient(create_app(str(run)))
    body = {"instances": [base64.b64encode(wav.read_bytes()).decode()]}
    answer = client.post("/v1/predict", json=body)
    assert answer.status_code == 200 and set(answer.json()["predictions"][0]) == {"transcript"}
    from deepatlas.saving import load

    expected = load(run).predict([wave])[0]
    assert answer.json()["predictions"][0]["transcript"] == expected
    floats = client.post("/v1/predict", json={"instances": [wave.tolist()]})
    assert floats.status_code == 200 and floats.json()["predictions"][0]["transcript"] == expected
    bad = client.post("/v1/predict", json={"instances": ["bm90IGEgd2F2"]})
    assert bad.status_code == 422 and "cannot be read as audio" in bad.json()["detail"]
