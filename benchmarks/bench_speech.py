"""Speech targets of issue #23 (docs/results-speech.md), with the models' default settings.

    python benchmarks/bench_speech.py kws            # keyword spotting vs MFCC means + logistic regression
    python benchmarks/bench_speech.py ctc --plot docs/speech-cer-snr.png   # digit strings, CER vs SNR

``--set NAME=VALUE`` changes a model setting (for quicker checks); the JSON of the numbers is
printed last. Test voices are never heard in training; the test noise is 20 dB unless said.
"""

from __future__ import annotations

import argparse
import json
import time

SNRS = ("clean", 20, 10, 5, 0)


def plot_curve(curve: dict, path: str) -> None:
    """CER (greedy and beam) against test SNR; ``curve[str(snr)][decoder]["cer"]``."""
    from deepatlas.plotting import new_figure, save_figure

    fig, ax = new_figure(figsize=(5, 3.2))
    xs = list(range(len(SNRS)))
    for decoder in ("greedy", "beam"):
        ax.plot(xs, [curve[str(s)][decoder]["cer"] for s in SNRS], marker="o", label=decoder)
    ax.set_xticks(xs, [f"{s} dB" if s != "clean" else s for s in SNRS])
    ax.set(xlabel="test SNR", ylabel="character error rate", title="speech-ctc, unseen voices")
    ax.axhline(0.05, color="grey", ls=":", lw=1)
    ax.legend()
    save_figure(fig, path)


def main() -> None:
    from deepatlas.data import literal, load_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", choices=("kws", "ctc"))
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--plot", help="PNG of CER against SNR (ctc)")
    parser.add_argument("--out", help="write the numbers to this JSON file")
    args = parser.parse_args()
    params = {k: literal(v) for k, _, v in (s.partition("=") for s in args.set)}
    out: dict = {"model": args.model, "params": params}
    if args.model == "kws":
        from deepatlas.models.speech.baseline import mfcc_logistic_baseline
        from deepatlas.models.speech.kws import SpeechCNN

        ds = load_dataset("spoken-digits")
        start = time.perf_counter()
        out["mfcc_logreg"] = mfcc_logistic_baseline(ds.X_train, ds.y_train, ds.X_test, ds.y_test)
        out["mfcc_logreg_seconds"] = time.perf_counter() - start
        model = SpeechCNN(**params).fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val))
        out.update(fit_seconds=model.fit_seconds_, epochs=model.n_epochs_, best_epoch=model.best_epoch_)
        out["test_accuracy"] = model.score(ds.X_test, ds.y_test)
        clean = load_dataset("spoken-digits:snr=clean")
        out["test_accuracy_clean"] = model.score(clean.X_test, clean.y_test)
    else:
        from deepatlas.models.speech.ctc import SpeechCTC, transcript_metrics

        ds = load_dataset("spoken-digits:kind=strings")
        cpu = time.process_time()
        model = SpeechCTC(**params).fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val))
        out.update(fit_seconds=model.fit_seconds_, epochs=model.n_epochs_, best_epoch=model.best_epoch_)
        out["fit_cpu_seconds"] = time.process_time() - cpu  # this process's CPU time: comparable under load
        out["curve"] = {}
        for snr in SNRS:
            test = ds if snr == 20 else load_dataset(f"spoken-digits:kind=strings,snr={snr}")
            out["curve"][str(snr)] = {
                decoder: transcript_metrics(model.predict(test.X_test, decoder=decoder), test.y_test)
                for decoder in ("greedy", "beam")
            }
            print(snr, out["curve"][str(snr)], flush=True)
        if args.plot:
            plot_curve(out["curve"], args.plot)
    print(json.dumps(out))
    if args.out:
        from deepatlas._io import write_json

        write_json(args.out, out)


if __name__ == "__main__":
    main()
