"""Vision applications (issue #19): the Fashion-MNIST and scenes data, COCO user data, the
measures (pycocotools mAP, torchmetrics IoU), the segmenter and the detector."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from deepatlas.data import load_dataset
from deepatlas.data.fashion import available as fashion_available
from deepatlas.data.scenes import boxes_from_masks, render_scenes
from deepatlas.errors import InputError
from deepatlas.models.vision.metrics import coco_map, segmentation_scores
from deepatlas.registry import create_model
from deepatlas.saving import load, save_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def need_fashion():
    """Fashion-MNIST from Debian's package: skipped with the reason where it is absent, except
    under CI=true, where it must be there (.ci/run installs it)."""
    if fashion_available():
        return
    reason = "Fashion-MNIST not installed (Debian package 'dataset-fashion-mnist'; .ci/run installs it)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI=true requires it")
    pytest.skip(reason)


# ---- Fashion-MNIST ------------------------------------------------------------------------------------
def test_fashion_mnist_standard_split_and_seeded_validation():
    need_fashion()
    ds = load_dataset("fashion-mnist")
    assert (len(ds.X_train), len(ds.X_val), len(ds.X_test)) == (54000, 6000, 10000)
    assert ds.sample_shape == (1, 28, 28) and ds.X_train.dtype == np.float32
    assert 0.0 <= ds.X_train.min() and ds.X_train.max() <= 1.0
    assert list(np.bincount(ds.y_test)) == [1000] * 10  # the standard test set
    assert list(np.bincount(ds.y_val)) == [600] * 10  # stratified
    again, other = load_dataset("fashion-mnist:seed=0"), load_dataset("fashion-mnist:seed=1")
    np.testing.assert_array_equal(again.y_val, ds.y_val)
    assert not np.array_equal(other.y_val, ds.y_val)
    np.testing.assert_array_equal(other.X_test, ds.X_test)


def test_fashion_mnist_from_a_folder_and_the_line_when_absent(tmp_path):
    with pytest.raises(InputError) as err:
        load_dataset(f"fashion-mnist:path={tmp_path}")
    assert str(err.value) == (
        f"Dataset 'fashion-mnist': folder '{tmp_path}' lacks train-images-idx3-ubyte, train-labels-idx1-ubyte, "
        "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (.gz or plain IDX files)."
    )
    from deepatlas.data import fashion

    message = str(pytest.raises(InputError, fashion.fashion_dir, None).value) if not fashion_available() else None
    if message is None:  # installed here: check the line by pointing the default elsewhere
        saved = fashion.DEBIAN_DIR
        fashion.DEBIAN_DIR = tmp_path
        try:
            message = str(pytest.raises(InputError, fashion.fashion_dir, None).value)
        finally:
            fashion.DEBIAN_DIR = saved
    assert "install Debian's package 'dataset-fashion-mnist'" in message and "fashion-mnist:path=DIR" in message


# ---- scenes ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_scenes():
    return load_dataset("scenes:n=300,size=32")


def test_scene_boxes_masks_and_pixels_agree_exactly():
    ds = load_dataset("scenes:n=200,overlap=0.3,seed=3")
    for X, Y in ((ds.X_train, ds.y_train), (ds.X_test, ds.y_test)):
        assert Y.shape == (len(X), 2, 64, 64) and Y.dtype == np.int64
        np.testing.assert_array_equal(X[:, 0] > 0, Y[:, 0] > 0)  # ink exactly where an object is
        np.testing.assert_array_equal(Y[:, 0] > 0, Y[:, 1] > 0)
        for y, (boxes, labels) in zip(Y, boxes_from_masks(Y)):
            ids = np.unique(y[1])[1:]
            assert 1 <= len(ids) <= 4 and list(ids) == list(range(1, len(ids) + 1))
            for i, (box, label) in enumerate(zip(boxes.astype(int), labels), start=1):
                inst = y[1] == i
                assert np.unique(y[0][inst]).tolist() == [label + 1]  # one class per instance
                rows, cols = np.nonzero(inst)
                assert box.tolist() == [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1]
                x0, y0, x1, y1 = box
                outside = inst.copy()
                outside[y0:y1, x0:x1] = False
                assert not outside.any()


def test_scenes_are_seeded_apart_and_follow_their_options():
    a, b = load_dataset("scenes:n=50,seed=1"), load_dataset("scenes:n=50,seed=1")
    np.testing.assert_array_equal(a.X_train, b.X_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(load_dataset("scenes:n=50,seed=2").X_train, a.X_train)
    one = load_dataset("scenes:n=40,size=48,max_objects=1,min_scale=0.5,max_scale=0.5")
    assert one.sample_shape == (1, 48, 48)
    for boxes, _ in boxes_from_masks(one.y_train):
        assert len(boxes) == 1 and (boxes[:, 2:] - boxes[:, :2]).max() <= 24
    # overlap=0: no two boxes of a scene intersect
    for boxes, _ in boxes_from_masks(load_dataset("scenes:n=100").y_train):
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                ix = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
                iy = min(boxes[i, 3], boxes[j, 3]) - max(boxes[i, 1], boxes[j, 1])
                assert ix <= 0 or iy <= 0


def test_scene_options_are_checked_in_one_line():
    with pytest.raises(InputError) as err:
        load_dataset("scenes:source=cifar")
    assert str(err.value) == "Dataset option 'source' of 'scenes' must be 'digits' or 'fashion'. Got 'cifar' instead."
    with pytest.raises(InputError) as err:
        load_dataset("scenes:n=5")
    assert str(err.value) == "Dataset option 'n' of 'scenes' must be an int in [10, 10000000]. Got 5 instead."
    with pytest.raises(InputError) as err:
        load_dataset("scenes:min_scale=0.5,max_scale=0.3")
    assert "'max_scale'" in str(err.value) and "[0.5, 1.0]" in str(err.value)


def test_fashion_scenes():
    need_fashion()
    ds = load_dataset("scenes:n=30,source=fashion")
    assert ds.meta["class_names"][0] == "T-shirt/top"
    np.testing.assert_array_equal(ds.X_train[:, 0] > 0, ds.y_train[:, 0] > 0)


def test_render_with_empty_pool_is_not_called_with_nothing():
    rng = np.random.default_rng(0)
    crops = np.ones((1, 8, 8), np.float32)
    X, Y = render_scenes(
        3, (crops, np.array([2])), rng, size=32, max_objects=2, min_scale=0.25, max_scale=0.25, overlap=0
    )
    boxes = boxes_from_masks(Y)
    assert all(len(b) >= 1 and set(lab.tolist()) == {2} for b, lab in boxes)
    assert all(((bx[:, 2:] - bx[:, :2]) == 8).all() for bx, _ in boxes)  # a full crop keeps its 8x8 box


# ---- COCO user data -----------------------------------------------------------------------------------
def write_coco(folder, *, n=12, edit=None):
    """``n`` images (grey 40x30 and RGB 30x40 alternating) with a polygon, an RLE and a box-only
    annotation in the first, one box per other image."""
    from PIL import Image
    from pycocotools import mask as mask_utils

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "img").mkdir(exist_ok=True)
    images, anns = [], []
    for i in range(n):
        w, h = (40, 30) if i % 2 == 0 else (30, 40)
        arr = np.zeros((h, w), np.uint8)
        arr[5:15, 5:15] = 200
        pic = Image.fromarray(arr) if i % 2 == 0 else Image.fromarray(np.stack([arr] * 3, axis=2))
        pic.save(folder / "img" / f"{i}.png")
        images.append({"id": i + 1, "file_name": f"img/{i}.png", "width": w, "height": h})
        anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 7, "bbox": [5, 5, 10, 10],
                     "segmentation": [[5, 5, 15, 5, 15, 15, 5, 15]], "area": 100, "iscrowd": 0})  # fmt: skip
    m = np.zeros((30, 40), np.uint8, order="F")
    m[20:25, 25:35] = 1
    rle = mask_utils.encode(m)
    rle["counts"] = rle["counts"].decode()
    anns.append(
        {
            "id": 100,
            "image_id": 1,
            "category_id": 9,
            "bbox": [25, 20, 10, 5],
            "segmentation": rle,
            "area": 50,
            "iscrowd": 0,
        }
    )
    anns.append({"id": 101, "image_id": 1, "category_id": 7, "bbox": [0, 20, 8, 8], "area": 64, "iscrowd": 0})
    doc = {"images": images, "annotations": anns, "categories": [{"id": 7, "name": "square"}, {"id": 9, "name": "bar"}]}
    if edit:
        edit(doc)
    (folder / "annotations.json").write_text(json.dumps(doc))
    return folder


def test_coco_folder_loads_with_masks_boxes_and_a_seeded_split(tmp_path):
    ds = load_dataset(str(write_coco(tmp_path / "coco")))
    assert ds.task == "scenes" and ds.meta["class_names"] == ["square", "bar"]
    assert ds.sample_shape == (3, 32, 32)  # RGB among the images: all RGB; median longest side 40 -> 32
    assert ds.meta["resize"]["canvas"] == 32
    assert len(ds.X_train) + len(ds.X_val) + len(ds.X_test) == 12
    X = np.concatenate([ds.X_train, ds.X_val, ds.X_test])
    Y = np.concatenate([ds.y_train, ds.y_val, ds.y_test])
    first = next(i for i in range(12) if len(boxes_from_masks(Y[i : i + 1])[0][0]) == 3)
    boxes, labels = boxes_from_masks(Y[first : first + 1])[0]
    # 40x30 scaled by 32/40 = 0.8: the polygon square [5, 15) -> [4, 12); the RLE bar, the box-only one
    assert sorted(labels.tolist()) == [0, 0, 1]
    assert [4, 4, 12, 12] in boxes.astype(int).tolist()
    assert X.shape[1] == 3 and X.max() <= 1.0
    again = load_dataset(str(tmp_path / "coco"))
    np.testing.assert_array_equal(again.y_test, ds.y_test)


@pytest.mark.parametrize(
    "edit, words",
    [
        (
            lambda d: d["annotations"][0].update(bbox=[35, 5, 10, 10]),
            "has bbox [35.0, 5.0, 10.0, 10.0] outside its image 'img/0.png' (40x30)",
        ),
        (
            lambda d: d["annotations"][0].update(category_id=3),
            "annotation 1 has category_id 3, which 'categories' does not list (known: 7, 9)",
        ),
        (lambda d: d.update(images=[], annotations=[]), "lists no images; a scene set needs at least 10"),
    ],
    ids=["box-outside", "unknown-category", "no-images"],
)
def test_coco_mistakes_are_one_line(tmp_path, edit, words):
    folder = write_coco(tmp_path / "c", edit=edit)
    with pytest.raises(InputError) as err:
        load_dataset(str(folder))
    assert words in str(err.value) and "\n" not in str(err.value)


# ---- measures -----------------------------------------------------------------------------------------
GT = [
    (np.array([[0, 0, 10, 10], [20, 20, 40, 40]], np.float32), np.array([0, 1])),
    (np.array([[5, 5, 25, 25]], np.float32), np.array([1])),
]


def test_map_perfect_shifted_and_false_positive():
    perfect = [(b, np.ones(len(b)), lab) for b, lab in GT]
    assert coco_map(GT, perfect, 2) == pytest.approx({"map": 1.0, "map50": 1.0, "map75": 1.0})
    # shifted right by 2 px: IoU 8/12 = 0.667 for the 10-px box (passes 4 of 10 thresholds), 18/22 =
    # 0.818 for the 20-px boxes (7 of 10): class 0 AP 0.4, class 1 AP 0.7, mean 0.55
    shift = np.array([2, 0, 2, 0], np.float32)
    shifted = [(b + shift, np.ones(len(b)), lab) for b, lab in GT]
    assert coco_map(GT, shifted, 2) == pytest.approx({"map": 0.55, "map50": 1.0, "map75": 0.5})
    # a class-1 false positive (score 0.9) ranked between the two right class-1 boxes (1.0, 0.5):
    # precision 1 up to recall 0.5, then 2/3; COCO's 101 recall points give class 1
    # (51 * 1 + 50 * 2/3) / 101, class 0 keeps AP 1
    noisy = [(np.concatenate([GT[0][0], GT[0][0][:1]]), np.array([0.5, 0.5, 0.9]), np.array([0, 1, 1])), perfect[1]]
    got = coco_map(GT, noisy, 2)
    assert got["map50"] == pytest.approx((1.0 + (51 + 50 * 2 / 3) / 101) / 2, abs=1e-9)
    assert coco_map(GT, [(np.zeros((0, 4)), np.zeros(0), np.zeros(0))] * 2, 2)["map"] == 0.0


def test_segmentation_scores_known_values():
    pred = np.array([[[0, 1], [1, 2]]])
    target = np.array([[[0, 1], [2, 2]]])
    s = segmentation_scores(pred, target, 4)
    assert s["pixel_accuracy"] == pytest.approx(0.75)
    assert s["iou_per_class"] == [1.0, 0.5, 0.5, None]
    assert s["miou"] == pytest.approx(2 / 3)


# ---- models -------------------------------------------------------------------------------------------
def test_segmenter_short_training_beats_untrained_and_reloads(small_scenes, tmp_path):
    ds = small_scenes
    untrained = create_model("segmenter", task="scenes", channels=(8, 16, 32), epochs=1, lr=1e-9, device="cpu")
    untrained.fit(ds.X_train, ds.y_train)
    est = create_model("segmenter", task="scenes", channels=(8, 16, 32), epochs=8, batch_size=8, device="cpu")
    est.fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val))
    before, after = untrained.scores(ds.X_test, ds.y_test), est.scores(ds.X_test, ds.y_test)
    # measured (seed 0): pixel accuracy 0.956, mIoU 0.546 after 8 epochs (0.21 before the coarse scores were
    # fused into the U-Net's output); the untrained network is near chance (mIoU 0.001)
    assert after["pixel_accuracy"] > 0.93 and after["pixel_accuracy"] > before["pixel_accuracy"] + 0.3, (before, after)
    assert after["miou"] > 0.45 and after["miou"] > before["miou"] + 0.3, (before, after)
    save_model(est, tmp_path / "run")
    np.testing.assert_array_equal(load(tmp_path / "run").predict(ds.X_test), est.predict(ds.X_test))
    fcn = create_model("segmenter", task="scenes", arch="fcn", channels=(8, 16, 32), epochs=1, device="cpu")
    assert fcn.fit(ds.X_train[:50], ds.y_train[:50]).predict(ds.X_test[:2]).shape == (2, 32, 32)


def test_detector_short_training_beats_untrained_and_reloads_the_same_boxes(small_scenes, tmp_path):
    ds = small_scenes
    kw = dict(channels=(8, 16, 32), head_channels=16, device="cpu")
    untrained = create_model("detector", task="scenes", epochs=1, lr=1e-9, **kw).fit(ds.X_train, ds.y_train)
    est = create_model("detector", task="scenes", epochs=12, batch_size=8, **kw)
    est.fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val))
    before, after = untrained.scores(ds.X_test, ds.y_test), est.scores(ds.X_test, ds.y_test)
    assert after["map50"] > before["map50"] + 0.3, (before, after)  # measured: 0.54 after 12 epochs
    dets = est.predict(ds.X_test[:5])
    assert len(dets) == 5 and all(d.boxes.shape == (len(d), 4) and (np.diff(d.scores) <= 0).all() for d in dets)
    save_model(est, tmp_path / "run")
    assert load(tmp_path / "run").predict(ds.X_test[:5]) == dets


@pytest.mark.parametrize("name", ["segmenter", "detector"])
def test_onnx_runs_at_another_size_with_parity(name, small_scenes, tmp_path):
    import onnxruntime as ort

    from deepatlas.export import export

    ds = small_scenes
    est = create_model(name, task="scenes", channels=(4, 8, 8), epochs=1, device="cpu").fit(
        ds.X_train[:40], ds.y_train[:40]
    )
    export(est, tmp_path / "m.onnx", exporter="torchscript")
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"))
    for size in (32, 64):
        x = np.random.default_rng(size).random((2, 1, size, size), dtype=np.float32)
        got = sess.run(None, {sess.get_inputs()[0].name: x})
        if name == "segmenter":
            np.testing.assert_allclose(got[1], est.predict_proba(x), atol=1e-4)
        else:
            heat, box, _ = est._maps(x)
            np.testing.assert_allclose(got[0], heat.numpy(), atol=1e-4)
            assert got[0].shape == (2, est.n_classes_, size // 4, size // 4)


def test_wrong_channels_and_sizes_are_one_line(small_scenes):
    ds = small_scenes
    est = create_model("segmenter", task="scenes", channels=(4, 8), epochs=1, device="cpu").fit(
        ds.X_train[:30], ds.y_train[:30]
    )
    with pytest.raises(InputError) as err:
        est.predict(np.zeros((1, 3, 32, 32), np.float32))
    assert str(err.value) == "X has 3 channels, but Segmenter was trained on 1."
    with pytest.raises(InputError) as err:
        est.predict(np.zeros((1, 1, 33, 32), np.float32))
    assert (
        str(err.value)
        == "Segmenter with 2 encoder blocks needs a height and width divisible by 2. Got X of size 33x32 instead."
    )
    with pytest.raises(InputError) as err:
        create_model("detector", task="scenes", epochs=1, device="cpu").fit(ds.X_train[:20], ds.y_train[:20, 0])
    assert "expects y of shape (20, 2, 32, 32)" in str(err.value)
    assert torch.get_num_threads() == 1


@pytest.mark.parametrize("name", ["detector", "segmenter"])
def test_cli_train_then_predict_images(name, tmp_path):
    from PIL import Image

    from deepatlas.cli import main

    run = tmp_path / "run"
    argv = ["train", name, "--data", "scenes:n=40,size=32", "--set", "channels=(4,8,8)", "--epochs", "1", "--quiet"]
    assert main([*argv, "--out", str(run)]) == 0
    metrics = json.loads((run / "metrics.json").read_text())
    keys = {"detector": {"test_map", "test_map50"}, "segmenter": {"test_miou", "test_pixel_accuracy"}}[name]
    assert keys <= set(metrics)
    if name == "segmenter":
        ev = json.loads((run / "evaluation.json").read_text())
        assert list(ev["iou_per_class"])[:2] == ["background", "0"] and len(ev["iou_per_class"]) == 11
    (tmp_path / "in").mkdir()
    ds = load_dataset("scenes:n=40,size=32")
    for i in range(3):
        Image.fromarray((ds.X_test[i, 0] * 255).round().astype(np.uint8)).save(tmp_path / "in" / f"s{i}.png")
    assert main(["predict", str(run), "--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")]) == 0
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    extra = "detections.json" if name == "detector" else "classes.json"
    assert written == sorted([extra, "s0.png", "s1.png", "s2.png"])
    if name == "detector":
        dets = json.loads((tmp_path / "out" / "detections.json").read_text())["images"]
        assert set(dets) == {"s0.png", "s1.png", "s2.png"}
        assert set(dets["s0.png"]) == {"boxes", "scores", "labels", "names"}
        with Image.open(tmp_path / "out" / "s0.png") as im:
            assert im.size == (256, 256)  # drawn 8x larger
    else:
        with Image.open(tmp_path / "out" / "s0.png") as im:
            assert im.size == (32, 32) and im.mode == "RGB"


# ---- non-convolutional baselines (bench_vision, atlas K.cnn-apps) and the CNN's image layout -------------
def test_neighbourhoods_hold_each_pixel_at_their_centre():
    from deepatlas.models.vision.baselines import neighbourhoods

    X = np.arange(2 * 2 * 5 * 5, dtype=np.float32).reshape(2, 2, 5, 5)
    F = neighbourhoods(X, k=3)
    assert F.shape == (2 * 5 * 5, 2 * 9)
    centre = F.reshape(2, 5, 5, 2, 3, 3)[..., 1, 1]  # (n, H, W, C)
    np.testing.assert_array_equal(centre, X.transpose(0, 2, 3, 1))
    assert F.reshape(2, 5, 5, 2, 3, 3)[0, 0, 0, 0, 0, 0] == 0  # zero padding outside the image


def test_component_detector_boxes_separate_objects_exactly(small_scenes):
    from deepatlas.models.vision.baselines import ComponentDetector, components

    ds = small_scenes
    truth = boxes_from_masks(ds.y_test)
    # Ink is exactly where objects are, so where objects do not touch (52 of these 60 scenes) the
    # components of the ink are the objects with exactly their boxes.
    exact = sum(
        sorted(map(tuple, components(x, 0.0).tolist())) == sorted(map(tuple, b.tolist()))
        for x, (b, _) in zip(ds.X_test, truth)
    )
    assert exact == 52 and len(truth) == 60
    det = ComponentDetector(seed=0).fit(ds.X_train, boxes_from_masks(ds.y_train))
    preds = det.predict(ds.X_test)
    assert all(len(b) == len(s) == len(lab) for b, s, lab in preds)
    n_classes = int(ds.y_train[:, 0].max())
    assert coco_map(truth, preds, n_classes)["map50"] == pytest.approx(0.806, abs=0.01)


def test_cnn_image_weights_are_channels_last_and_save_contiguous(tmp_path):
    ds = load_dataset("digits")
    model = create_model("cnn", channels=(4,), epochs=1).fit(ds.X_train, ds.y_train)
    conv = model.module_[0]
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    save_model(model, tmp_path / "run")
    again = load(tmp_path / "run")
    np.testing.assert_array_equal(again.predict_proba(ds.X_test), model.predict_proba(ds.X_test))


def test_fashion_halves_for_transfer():
    need_fashion()
    src, tgt = load_dataset("fashion-mnist-0to4"), load_dataset("fashion-mnist-5to9")
    assert set(np.unique(src.y_train)) == {0, 1, 2, 3, 4} and set(np.unique(tgt.y_test)) == {5, 6, 7, 8, 9}
    assert (len(src.X_train) + len(tgt.X_train), len(src.X_test), len(tgt.X_test)) == (54000, 5000, 5000)


@pytest.mark.slow
def test_fashion_mnist_default_cnn_reaches_the_target():
    """Issue #19's target with the defaults: >= 0.92 test accuracy (0.926 measured, seed 0; about
    320 CPU s, so several minutes)."""
    need_fashion()
    ds = load_dataset("fashion-mnist")
    model = create_model("cnn", seed=0).fit(ds.X_train, ds.y_train, validation_data=(ds.X_val, ds.y_val))
    assert model.score(ds.X_test, ds.y_test) >= 0.92
