"""Atlas: the pose-estimation and face-recognition parts of the survey's computer-vision claim
("deep learning is widely applied in CV: ... pose estimation, face recognition"; ``K.cv-apps`` in
``deepatlas/atlas/claims.py``), issue #20.

Measured, per seed, each deep model against the classical baseline the claim's row names, on
the same data:

- pose: the ``keypoints`` heatmap network against direct coordinate regression by the CNN
  (``head="regression"``), test PCK@0.1 on ``figures`` (seeded stick figures);
- face detection: the ``cnn`` against HOG features and a linear SVM (``hog-svm``), test accuracy
  on ``lfw-faces`` (real faces and non-faces);
- open-set recognition: the ``embedding`` (its default batch-hard triplet loss) against PCA "eigenfaces", verification AUC on
  identities never seen in training (``digits:open_set=7`` in quick mode, Fashion-MNIST's three
  last classes in full mode when its files are installed). Identity proxies, not faces: no face
  set with identities loads offline.

The statistic is the smallest of the three margins (deep minus classical): the claim says deep
learning serves all of them, so the weakest application decides. Quick mode trains small
networks for a few epochs on small sets (seconds); the full mode trains the cards at their
defaults (minutes).

Claim ID: the survey's claim list gives the CV-applications row the ID ``K.cv``, which it also
gives cross-validation; the project registers this experiment as ``K.cv-apps`` (``claims.py``).
Its classification, detection and segmentation parts are ``K.cnn-apps`` (``apps_vision.py``).
"""

from __future__ import annotations

import numpy as np

from deepatlas.atlas import Result, Rule, experiment
from deepatlas.atlas.experiments._common import HEAVY, r

FULL_OPEN_SET_ROWS = 6000

RULE = Rule(
    "smallest margin over pose (PCK@0.1: heatmaps minus coordinate regression), face detection (accuracy: "
    "CNN minus HOG + linear SVM) and open-set verification (AUC: embedding minus eigenfaces)",
    supported=0.05,
    refuted=0.0,
    condition="deep learning leads in every part, but by less than five points in at least one",
)


def pose_part(ctx) -> dict:
    from deepatlas.data import load_dataset
    from deepatlas.registry import create_model

    ds = load_dataset(f"figures:n={ctx.pick(240, 400)},seed={ctx.seed}")
    small = {"channels": (8, 16, 32), "epochs": 4, "batch_size": 16} if ctx.quick else {}
    out = {}
    for head in ("heatmap", "regression"):
        model = create_model("keypoints", head=head, seed=ctx.seed, **small)
        model.fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val))
        out[f"{head}_pck"] = model.score(ds.X_test, ds.y_test)
    return out


def face_part(ctx) -> dict:
    from deepatlas.data import load_dataset
    from deepatlas.registry import create_model

    ds = load_dataset(f"lfw-faces:seed={ctx.seed}")
    cnn = create_model("cnn", seed=ctx.seed, **({"channels": (8, 16), "epochs": 15} if ctx.quick else {}))
    cnn.fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val))
    hog = create_model("hog-svm", seed=ctx.seed).fit(
        np.concatenate([ds.X_train, ds.X_val]), np.r_[ds.y_train, ds.y_val]
    )
    return {"cnn_accuracy": cnn.score(ds.X_test, ds.y_test), "hog_svm_accuracy": hog.score(ds.X_test, ds.y_test)}


def open_set_part(ctx) -> dict:
    from deepatlas.data import fashion, load_dataset
    from deepatlas.registry import create_model

    spec = "fashion-mnist:open_set=7" if not ctx.quick and fashion.available() else "digits:open_set=7"
    ds = load_dataset(spec, seed=ctx.seed)
    if not ctx.quick:  # the seed's own 6,000 of the seen classes' images (of about 38,000)
        keep = np.random.default_rng(ctx.seed).permutation(len(ds.X_train))[:FULL_OPEN_SET_ROWS]
        ds.X_train, ds.y_train = ds.X_train[keep], ds.y_train[keep]
    small = {"channels": (8, 16), "epochs": 4} if ctx.quick else {}
    emb = create_model("embedding", task="open-set", seed=ctx.seed, **small)
    emb.fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val))
    pca = create_model("eigenfaces", task="open-set", seed=ctx.seed).fit(ds.X_train, ds.y_train)
    return {
        "data": spec,
        "embedding_auc": emb.open_set_scores(ds.X_test, ds.y_test, seed=ctx.seed)["auc"],
        "eigenfaces_auc": pca.open_set_scores(ds.X_test, ds.y_test, seed=ctx.seed)["auc"],
    }


def recognition(ctx) -> Result:
    """Heavy: five seeds in the full report, one in the quick one (quick: 240 figures, lfw-faces, digits'
    open set; small networks). Full: 400 figures (was 2,000) and 6,000 training images of the open
    set's seen classes (was all of them), the cards' defaults otherwise. Measured per unit (1 thread,
    CPU s): the heatmap network 1.0 and the regression 0.4 an epoch of 144 figures, the embedding
    0.45 an epoch of 1,000 images: about 45 + 27 CPU s a seed, the faces and baselines aside."""
    pose, face, open_set = pose_part(ctx), face_part(ctx), open_set_part(ctx)
    margins = {
        "pose": pose["heatmap_pck"] - pose["regression_pck"],
        "face detection": face["cnn_accuracy"] - face["hog_svm_accuracy"],
        "open-set verification": open_set["embedding_auc"] - open_set["eigenfaces_auc"],
    }
    fig, ax = ctx.figure(figsize=(5, 3))
    x = np.arange(3)
    ax.bar(x - 0.2, [pose["heatmap_pck"], face["cnn_accuracy"], open_set["embedding_auc"]], 0.4, label="deep")
    ax.bar(
        x + 0.2, [pose["regression_pck"], face["hog_svm_accuracy"], open_set["eigenfaces_auc"]], 0.4, label="baseline"
    )
    ax.set_xticks(x, ["pose PCK@0.1", "face accuracy", "open-set AUC"])
    ax.set(ylim=(0, 1), title="deep model vs classical baseline")
    ax.legend()
    summary = (
        f"Stick figures: heatmap PCK@0.1 {pose['heatmap_pck']:.3f} vs coordinate regression "
        f"{pose['regression_pck']:.3f}; lfw-faces: CNN accuracy {face['cnn_accuracy']:.3f} vs HOG + linear SVM "
        f"{face['hog_svm_accuracy']:.3f}; {open_set['data']} (unseen identities): embedding verification AUC "
        f"{open_set['embedding_auc']:.3f} vs eigenfaces {open_set['eigenfaces_auc']:.3f}. "
        f"Weakest margin: {min(margins, key=margins.get)}."
    )
    numbers = {f"{k.replace(' ', '_').replace('-', '_')}_margin": r(v) for k, v in margins.items()}
    numbers |= {k: r(v) for part in (pose, face) for k, v in part.items()}
    numbers |= {k: r(v) for k, v in open_set.items() if k != "data"}
    return Result(min(margins.values()), summary, numbers, ctx.save(fig))


def register(claim_id: str):
    """Attach :func:`recognition` to ``claim_id`` (see the module's note on the claim ID)."""
    return experiment(
        claim_id,
        rule=RULE,
        **HEAVY,
        requires=("keypoints", "cnn", "hog-svm", "embedding", "eigenfaces"),
        full_seconds=380,
    )(recognition)


register("K.cv-apps")
