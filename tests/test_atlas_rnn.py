"""The RNN/LSTM atlas experiments run in quick mode and give measured, sane verdicts."""

import json

import torch

from deepatlas.atlas.runner import run_report


def test_bptt_and_vanishing_experiments_measure_what_they_claim(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the report's parallel workers do; spinning threads waste a shared machine
    try:
        results = run_report(tmp_path, quick=True, only="R.[bv]*", progress=False)
    finally:
        torch.set_num_threads(threads)
    by_id = {e["id"]: e for e in results}
    assert set(by_id) == {"R.bptt", "R.vanishing"}
    bptt, van = by_id["R.bptt"], by_id["R.vanishing"]
    # Backprop through time agrees with finite differences to far better than 1e-5, and training helps.
    assert bptt["verdict"] == "supported", bptt["summary"]
    assert bptt["numbers"]["worst_rel_error"] < 1e-5
    assert bptt["numbers"]["mse_trained"] < bptt["numbers"]["mse_1_epoch"]
    # At initialisation a tanh RNN's gradient shrinks by a constant factor < 1 per step.
    assert van["verdict"] == "supported", van["summary"]
    assert 0 < van["numbers"]["rnn_factor_per_step"] < 0.95
    saved = json.loads((tmp_path / "results.json").read_text())["claims"]
    for entry in saved:
        assert (tmp_path / "figures" / entry["figure"]).is_file()
