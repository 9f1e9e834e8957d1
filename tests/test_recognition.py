"""Recognition (issue #20): the open-set measures against scikit-learn's ROC on hand-made scores,
the open-set split, the stick-figure generator (keypoints on the drawn limbs), PCK, short runs
that beat chance, the CLI (train, predict with a gallery, drawn skeletons), export and serving."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from deepatlas.cli import main
from deepatlas.data import load_dataset
from deepatlas.data.figures import JOINTS, LIMBS, make_figures, pose_keypoints
from deepatlas.errors import InputError
from deepatlas.models.recognition.metrics import (
    check_identities,
    equal_error_rate,
    pair_scores,
    pck,
    rank1,
    verification,
)
from deepatlas.registry import create_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# Hand-made verification scores: 4 genuine pairs, 4 impostor pairs. A threshold between 0.4 and
# 0.6 rejects one genuine pair (0.4) and accepts one impostor (0.6): FRR = FAR = 1/4, the EER.
# Genuine beats impostor in 15 of the 16 (genuine, impostor) combinations: AUC = 15/16. No
# impostor scores above 0.7, so at FAR 0 three genuine pairs of four are accepted.
GENUINE = [0.9, 0.8, 0.7, 0.4]
IMPOSTOR = [0.6, 0.3, 0.2, 0.1]


def test_auc_eer_and_tar_on_hand_made_scores():
    scores = np.array(GENUINE + IMPOSTOR)
    same = np.array([True] * 4 + [False] * 4)
    v = verification(scores, same)
    assert v["auc"] == pytest.approx(15 / 16) == roc_auc_score(same, scores)
    assert v["eer"] == pytest.approx(0.25)
    assert v["tar_at_far_1e-2"] == pytest.approx(0.75)


def test_eer_matches_a_threshold_sweep_on_random_scores():
    rng = np.random.default_rng(0)
    same = rng.uniform(size=4000) < 0.3
    scores = rng.normal(size=4000) + 1.2 * same
    v = verification(scores, same)
    assert v["auc"] == pytest.approx(roc_auc_score(same, scores))
    thresholds = np.sort(scores)
    far = np.array([(scores[~same] >= t).mean() for t in thresholds])
    frr = np.array([(scores[same] < t).mean() for t in thresholds])
    k = np.argmin(np.abs(far - frr))
    assert v["eer"] == pytest.approx((far[k] + frr[k]) / 2, abs=2e-3)
    assert equal_error_rate(np.array([0.0, 1.0]), np.array([0.0, 1.0])) == pytest.approx(0.5)  # chance


def test_pairs_and_rank1_on_hand_made_embeddings():
    E = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [-1, 0], [-0.9, -0.2]], float)
    ids = np.array([0, 0, 1, 1, 2, 2])
    scores, same = pair_scores(E, ids)
    assert len(scores) == 15 and same.sum() == 3
    assert verification(scores, same)["auc"] == 1.0
    assert rank1(E, ids) == 1.0
    assert rank1(E, np.array([0, 1, 0, 1, 2, 2])) < 1.0


def test_identities_need_two_images_each():
    with pytest.raises(InputError, match="identity 3 has 1 image"):
        check_identities(np.array([1, 1, 2, 2, 3]))
    with pytest.raises(InputError, match="at least 2 identities"):
        check_identities(np.array([1, 1, 1]))


def test_open_set_split_tests_on_unseen_identities():
    full = load_dataset("digits")
    ds = load_dataset("digits:open_set=7")
    assert ds.task == "open-set" and ds.name == "digits:open_set=7"
    assert set(np.unique(ds.y_train)) == set(range(7)) == set(np.unique(ds.y_val))
    assert set(np.unique(ds.y_test)) == {7, 8, 9}
    every = np.concatenate([full.y_train, full.y_val, full.y_test])
    assert len(ds.y_test) == int(np.isin(every, [7, 8, 9]).sum())  # every image of the unseen identities
    assert ds.meta["open_set"] == {"train": [str(i) for i in range(7)], "test": ["7", "8", "9"]}


def test_open_set_on_an_image_folder_trains_on_the_first_sub_folders(tmp_path):
    from PIL import Image

    for k, name in enumerate(["zed", "ann", "bob", "cy"]):
        (tmp_path / name).mkdir()
        for i in range(10):
            Image.fromarray(np.full((6, 6), 30 * k + i, np.uint8)).save(tmp_path / name / f"{i}.png")
    ds = load_dataset(f"{tmp_path}:open_set=2")
    assert set(ds.y_train) | set(ds.y_val) == {"ann", "bob"}
    assert sorted(set(ds.y_test)) == ["cy", "zed"] and len(ds.y_test) == 20


# ---- the stick figures ---------------------------------------------------------------------------------
def test_figure_keypoints_lie_on_the_drawn_limbs():
    X, k, width = make_figures(40, seed=3, clutter=False)
    assert X.shape == (40, 3, 64, 64) and k.shape == (40, len(JOINTS), 2) and len(JOINTS) >= 9
    assert (k >= 0).all() and (k <= 63).all()
    for img, pts in zip(X, k):
        background = img[:, 0, 0]  # the corners stay empty (the figure keeps a margin)
        for x, y in pts:  # a stroke covers the joint's pixel or (a thin one, anti-aliased) a neighbour of it
            r, c = int(round(y)), int(round(x))
            patch = img[:, r - 1 : r + 2, c - 1 : c + 2]
            assert np.abs(patch - background[:, None, None]).max() > 0.3, (x, y)
        # and nothing is drawn far from every limb
        ys, xs = np.mgrid[0:64, 0:64]
        grid = np.stack([xs, ys], -1).reshape(-1, 2).astype(float)
        near = np.zeros(len(grid), bool)
        for a, b in LIMBS:
            p, q = pts[a], pts[b]
            t = np.clip(((grid - p) @ (q - p)) / max(((q - p) ** 2).sum(), 1e-9), 0, 1)
            near |= np.linalg.norm(grid - (p + t[:, None] * (q - p)), axis=1) < 6
        far = img.reshape(3, -1)[:, ~near]
        np.testing.assert_allclose(far, np.repeat(background[:, None], far.shape[1], 1), atol=1 / 255)


def test_figures_are_seeded():
    a, b = make_figures(8, seed=1), make_figures(8, seed=1)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(make_figures(8, seed=2)[1], a[1])
    k, s = pose_keypoints(np.random.default_rng(0), 100)
    torso = np.linalg.norm(k[:, 1] - k[:, 2], axis=1)
    np.testing.assert_allclose(torso, s, rtol=1e-5)


def test_pck_of_the_truth_is_one_and_the_threshold_is_a_tenth_of_the_size():
    _, k, _ = make_figures(20, seed=0, clutter=False)
    assert pck(k, k).all()
    size = (k.max(axis=1) - k.min(axis=1)).max(axis=1)
    shift = np.zeros_like(k)
    shift[..., 0] = 0.09 * size[:, None]
    assert pck(k + shift, k).all()
    shift[..., 0] = 0.11 * size[:, None]
    assert not pck(k + shift, k).any()


# ---- short runs beat chance -----------------------------------------------------------------------------
def test_a_short_keypoint_run_beats_the_mean_pose():
    ds = load_dataset("figures:n=400")
    est = create_model("keypoints", channels=(8, 16, 32), epochs=6, batch_size=16, device="cpu", seed=0)
    est.fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val))
    mean_pose = np.repeat(ds.y_train.mean(axis=0, keepdims=True), len(ds.y_test), axis=0)
    chance = pck(mean_pose, ds.y_test).mean()
    got = est.score(ds.X_test, ds.y_test)
    assert got > max(0.3, 3 * chance), (got, chance)
    assert est.predict(ds.X_test[:3]).shape == (3, len(JOINTS), 2)


def test_a_short_embedding_run_beats_chance_on_unseen_identities():
    ds = load_dataset("digits:open_set=7")
    est = create_model("embedding", task="open-set", channels=(8, 16), epochs=4, device="cpu", seed=0)
    est.fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val))
    E = est.transform(ds.X_test)
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1, atol=1e-5)
    m = est.dataset_metrics(ds)
    assert m["test_verification_auc"] > 0.65 and m["test_rank1"] > 0.5, m  # chance: 0.5 and 1/3
    assert 0 < m["test_eer"] < 0.4


def test_hog_svm_tells_faces_from_non_faces():
    pytest.importorskip("skimage", reason="the recognition extra (scikit-image) brings lfw-faces and HOG")
    ds = load_dataset("lfw-faces")
    est = create_model("hog-svm").fit(ds.X_train, ds.y_train)
    assert est.score(ds.X_test, ds.y_test) >= 0.8


# ---- the command line, export, serving --------------------------------------------------------------------
def _png(path, arr):
    from PIL import Image

    Image.fromarray((np.clip(arr, 0, 1) * 255).astype(np.uint8)).save(path)


def test_cli_embedding_run_writes_open_set_metrics_and_identifies_against_a_gallery(tmp_path, capsys):
    out = tmp_path / "emb"
    argv = ["train", "embedding", "--data", "digits:open_set=7", "--set", "channels=(4,8)", "--epochs", "2"]
    assert main([*argv, "--quiet", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("test_verification_auc", "test_eer", "test_tar_at_far_1e-2", "test_rank1"):
        assert 0 <= metrics[key] <= 1, key
    assert (out / "plots" / "roc.png").stat().st_size > 0
    ds = load_dataset("digits:open_set=7")
    (tmp_path / "gallery").mkdir()
    for label in (7, 8, 9):
        (tmp_path / "gallery" / f"id{label}").mkdir()
        _png(tmp_path / "gallery" / f"id{label}" / "a.png", ds.X_test[ds.y_test == label][0, 0])
    (tmp_path / "probes").mkdir()
    for i in range(4):
        _png(tmp_path / "probes" / f"p{i}.png", ds.X_test[i, 0])
    argv = ["predict", str(out), "--input", str(tmp_path / "probes"), "--gallery", str(tmp_path / "gallery")]
    assert main([*argv, "--output", str(tmp_path / "pred")]) == 0
    rows = (tmp_path / "pred" / "identities.csv").read_text().splitlines()
    assert rows[0] == "file,identity,similarity" and len(rows) == 5
    assert {r.split(",")[1] for r in rows[1:]} <= {"id7", "id8", "id9"}
    assert len((tmp_path / "pred" / "embeddings.csv").read_text().splitlines()) == 5


def test_cli_keypoint_run_reports_pck_per_joint_and_draws_skeletons(tmp_path):
    out = tmp_path / "kp"
    argv = ["train", "keypoints", "--data", "figures:n=60", "--set", "channels=(4,8)", "--epochs", "1"]
    assert main([*argv, "--quiet", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert 0 <= metrics["test_pck"] <= 1
    evaluation = json.loads((out / "evaluation.json").read_text())
    assert list(evaluation["per_joint_pck"]) == list(JOINTS)
    assert (out / "plots" / "predictions.png").stat().st_size > 0
    X, _, _ = make_figures(2, seed=9)
    (tmp_path / "in").mkdir()
    for i, x in enumerate(X):
        _png(tmp_path / "in" / f"f{i}.png", x.transpose(1, 2, 0))
    assert main(["predict", str(out), "--input", str(tmp_path / "in"), "--output", str(tmp_path / "pred")]) == 0
    found = json.loads((tmp_path / "pred" / "keypoints.json").read_text())["images"]
    assert sorted(found) == ["f0.png", "f1.png"] and list(found["f0.png"]) == list(JOINTS)
    from PIL import Image

    with Image.open(tmp_path / "pred" / "f0.png") as im:
        assert im.size == (256, 256)


@pytest.mark.parametrize("name", ["embedding", "keypoints"])
def test_export_parity_and_serving(name, tmp_path):
    pytest.importorskip("onnxruntime", reason="the export extra")
    pytest.importorskip("fastapi", reason="the serve extra")
    from fastapi.testclient import TestClient

    from deepatlas.export import export
    from deepatlas.runs import train_run
    from deepatlas.serving import create_app

    spec, params = {
        "embedding": ("digits:open_set=7", {"channels": (4,), "embedding_dim": 8}),
        "keypoints": ("figures:n=40", {"channels": (4, 8)}),
    }[name]
    ds = load_dataset(spec)
    est = create_model(name, task=ds.task, epochs=1, device="cpu", **params)
    train_run(est, ds, tmp_path / "run", data_spec=spec, quiet=True)
    export(tmp_path / "run", exporter="torchscript")  # parity is checked inside: it raises on a mismatch
    client = TestClient(create_app(tmp_path / "run"))
    r = client.post("/v1/predict", json={"instances": ds.X_test[:2].tolist()})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    if name == "embedding":
        np.testing.assert_allclose([p["embedding"] for p in preds], est.transform(ds.X_test[:2]), atol=1e-4)
    else:
        np.testing.assert_allclose([p["keypoints"] for p in preds], est.predict(ds.X_test[:2]), atol=1e-3)


# ---- the atlas experiment (pose and face parts of the CV-applications claim) ------------------------------
def test_recognition_rule_can_give_every_verdict():
    from deepatlas.atlas.experiments.apps_recognition import RULE
    from deepatlas.atlas.rules import apply

    assert RULE.verdicts() == ("supported", "conditional", "refuted")
    assert apply(RULE, [0.2, 0.3, 0.1])[0] == "supported"
    assert apply(RULE, [-0.1, -0.2, -0.05])[0] == "refuted"
    assert apply(RULE, [0.02, 0.03, 0.01])[0] == "conditional"


@pytest.mark.slow  # trains six small models (20 s on the loaded 2-core machine)
def test_recognition_experiment_quick_mode(tmp_path):
    import time

    from deepatlas.atlas import CLAIMS, Context
    from deepatlas.atlas.experiments.apps_recognition import recognition

    ctx = Context(CLAIMS["K.cv-apps"], quick=True, seeds=(0,), figures_dir=tmp_path)
    start = time.perf_counter()
    result = recognition(ctx)
    seconds = time.perf_counter() - start
    numbers = result.numbers
    assert set(numbers) >= {"pose_margin", "face_detection_margin", "open_set_verification_margin"}
    margins = [numbers[k] for k in ("pose_margin", "face_detection_margin", "open_set_verification_margin")]
    assert result.value == pytest.approx(min(margins), abs=1e-4)
    assert 0 <= numbers["heatmap_pck"] <= 1 and (tmp_path / "K_cv-apps.png").exists()
    print(f"quick mode: {seconds:.1f} s", numbers)
