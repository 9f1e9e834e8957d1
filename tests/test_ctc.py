"""CTC: decoding, the padding rule, learning digit strings, errors and the CLI."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from deepatlas.data import load_dataset
from deepatlas.errors import InputError
from deepatlas.models.rnn.ctc import CTCNet, CTCRecognizer, edit_distance, greedy_paths, prefix_beam_search
from deepatlas.runs import load, save_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: see conftest.py


def test_greedy_decoding_merges_repeats_and_drops_blanks():
    path = torch.tensor([[1, 1, 0, 1, 2, 2, 0, 0]])
    log_probs = F.one_hot(path, 3).float().log()
    assert greedy_paths(log_probs)[0, :4].tolist() == [1, 1, 2, 0]


def test_beam_search_finds_the_labelling_that_best_path_misses():
    # Each step: blank 0.6, 'a' 0.4. Best path: blank blank -> "" (0.36); but "a" has 0.16 + 0.24 + 0.24 = 0.64.
    log_probs = np.log(np.array([[0.6, 0.4], [0.6, 0.4]]))
    assert greedy_paths(torch.from_numpy(log_probs)[None])[0].tolist() == [0, 0]
    assert prefix_beam_search(log_probs, beam_width=4) == (1,)


def test_padded_steps_leave_the_ctc_loss_unchanged():
    torch.manual_seed(0)
    net = CTCNet(3, 4, masked=True, per_step=True, dropout=0.0, cell="lstm", hidden_size=5, bidirectional=True)
    x = torch.randn(1, 6, 3)
    short = torch.cat([x, torch.ones(1, 6, 1)], dim=2)  # 6 real steps
    padded = torch.cat(
        [torch.cat([x, torch.zeros(1, 3, 3)], 1), torch.cat([torch.ones(1, 6, 1), torch.zeros(1, 3, 1)], 1)], 2
    )
    target = torch.tensor([[1, 2, 2]])
    loss_short = F.ctc_loss(net(short).transpose(0, 1), target, torch.tensor([6]), torch.tensor([3]))
    loss_padded = F.ctc_loss(net(padded).transpose(0, 1), target, torch.tensor([9]), torch.tensor([3]))
    assert math.isclose(loss_short.item(), loss_padded.item(), rel_tol=1e-5)


def test_edit_distance():
    assert edit_distance("1234", "1224") == 1 and edit_distance("", "12") == 2 and edit_distance("12", "12") == 0


def test_ctc_learns_short_digit_strings():
    ds = load_dataset("digit-strings:n=1000,max_digits=2")
    model = CTCRecognizer(hidden_size=32, epochs=12, lr=1e-2, batch_size=32)
    model.fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val))
    metrics = model.dataset_metrics(ds)
    assert metrics["test_string_accuracy"] >= 0.7, metrics
    assert set(model.alphabet_) <= set("0123456789")


def test_save_load_and_ragged_input(tmp_path):
    ds = load_dataset("digit-strings:n=100,max_digits=2")
    X = [x[: 12 + i % 8] for i, x in enumerate(ds.X_train)]  # ragged widths
    model = CTCRecognizer(hidden_size=8, epochs=1).fit(X, ds.y_train)
    assert model.masked_
    save_model(model, tmp_path)
    again = load(tmp_path)
    assert again.alphabet_ == model.alphabet_
    np.testing.assert_array_equal(again.predict(X[:10]), model.predict(X[:10]))
    assert again.predict(X[:3], decoder="beam").shape == (3,)


def test_labels_outside_the_alphabet_are_refused():
    X = np.zeros((4, 10, 2), np.float32)
    with pytest.raises(InputError) as err:
        CTCRecognizer(alphabet="0123456789", epochs=1).fit(X, ["12", "3a", "4", "5"])
    assert str(err.value) == "y[1] = '3a' has 'a', which is not in the alphabet '0123456789'."
    model = CTCRecognizer(epochs=1, hidden_size=4).fit(X, ["12", "3", "4", "5"])
    with pytest.raises(InputError, match=r"^y\[0\] = '9' has '9', which is not in the alphabet '12345'\.$"):
        model.fit(X, ["12", "3", "4", "5"], validation_data=(X[:1], ["9"]))


def test_labels_too_long_for_the_sequence_are_refused():
    with pytest.raises(InputError) as err:
        CTCRecognizer(epochs=1).fit(np.zeros((2, 3, 1), np.float32), ["11", "1111"])
    assert str(err.value) == "y[1] needs at least 7 steps for CTC, but sequence 1 of X has 3."


def test_a_run_reports_string_accuracy(tmp_path):
    from deepatlas.registry import create_model
    from deepatlas.runs import train_run

    ds = load_dataset("digit-strings:n=100,max_digits=2")
    model = create_model("lstm-ctc", task=ds.task, hidden_size=4, epochs=1)
    metrics = train_run(model, ds, tmp_path, data_spec="digit-strings:n=100,max_digits=2")
    assert 0 <= metrics["test_string_accuracy"] <= 1 and "test_char_error_rate" in metrics
    assert json.loads((tmp_path / "config.json").read_text())["class"] == "CTCRecognizer"


@pytest.mark.slow
def test_ctc_transcribes_digit_strings_to_target():
    ds = load_dataset("digit-strings")
    model = CTCRecognizer(epochs=20)
    model.fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val))
    assert model.dataset_metrics(ds)["test_string_accuracy"] >= 0.90
