"""``deepatlas predict RUN --input img.png|DIR --output OUT/`` for the vision family.

Every input image is read and checked (an image file, the channel count and the height and width
the run was trained on) before anything is written, so a bad input leaves ``OUT`` untouched. Then

- a detector writes ``OUT/detections.json`` (per image: boxes ``[x0, y0, x1, y1]`` in the image's
  pixels, scores, class labels and names) and ``OUT/<image>.png``, the image with its boxes
  drawn (scaled up so that a 64x64 scene is legible; the scale is recorded in the JSON);
- a segmenter writes ``OUT/<image>.png``, a colour mask (one colour per class, background
  black), and ``OUT/classes.json``, the colour of every class.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepatlas._io import atomic_path, write_json
from deepatlas.errors import InputError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm")
MIN_DRAWN_SIDE = 256  # drawn images are scaled up by a whole factor to at least this side


def input_images(path: str | Path) -> list[Path]:
    """The image files named by ``--input``: one file, or the images of a folder (sorted)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"--input {str(path)!r} does not exist.")
    if p.is_dir():
        found = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        if not found:
            raise InputError(f"--input folder {str(path)!r} holds no images ({', '.join(IMAGE_EXTENSIONS)}).")
        return found
    if p.suffix.lower() not in IMAGE_EXTENSIONS:
        raise InputError(
            f"--input {str(path)!r} is not an image; a detector or segmenter run reads image files "
            f"({', '.join(IMAGE_EXTENSIONS)}) or a folder of them."
        )
    return [p]


def read_images(files: list[Path], shape: tuple[int, int, int]) -> np.ndarray:
    """``(n, C, H, W)`` float32 in [0, 1]; one line for a file that is not a readable image or that
    has another channel count or size than ``shape`` (the run's ``(C, H, W)``)."""
    from PIL import Image, UnidentifiedImageError

    c, h, w = shape
    out = np.zeros((len(files), c, h, w), np.float32)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as im:
                im.load()
                grey = im.mode in ("L", "1", "I", "I;16", "F", "LA")
                channels = 1 if grey else 3
                arr = np.asarray(im.convert("L" if grey else "RGB"), np.float32)
        except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as exc:
            raise InputError(f"--input image {str(f)!r} cannot be read: {exc}.") from None
        if channels != c:
            kinds = {1: "grey", 3: "RGB"}
            raise InputError(
                f"--input image {str(f)!r} is {kinds[channels]} ({channels} channel{'s' * (channels > 1)}), but the run "
                f"was trained on {kinds.get(c, c)} images ({c} channel{'s' * (c > 1)})."
            )
        if arr.shape[:2] != (h, w):
            raise InputError(
                f"--input image {str(f)!r} is {arr.shape[1]}x{arr.shape[0]}, but the run was trained on {w}x{h} "
                "images; resize it (or pad it) to that size."
            )
        out[i] = (arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)) / 255.0
    return out


def palette(n: int) -> np.ndarray:
    """``(n, 3)`` uint8 colours: black for background (index 0), then matplotlib's tab20."""
    from matplotlib import colormaps

    colours = np.zeros((n, 3), np.uint8)
    tab = colormaps["tab20"]
    for k in range(1, n):
        colours[k] = (np.asarray(tab((k - 1) % 20)[:3]) * 255).round()
    return colours


def _save_png(image, path: Path) -> None:
    with atomic_path(path) as tmp:
        image.save(tmp, format="PNG")


def predict_images(model, run: str, input_path: str, output: str) -> list[str]:
    """Apply a detector or segmenter run to ``input_path`` and write its answer under ``output``;
    returns the lines to print."""
    from PIL import Image, ImageDraw

    files = input_images(input_path)
    X = read_images(files, tuple(int(s) for s in model.input_shape_))
    out = Path(output)
    names = [f.stem for f in files]
    if len(set(names)) != len(names):
        raise InputError(f"--input {input_path!r} holds images with the same name but another extension.")
    if hasattr(model, "n_classes_"):  # detector
        dets = model.predict(X)
        scale = max(1, MIN_DRAWN_SIDE // max(X.shape[2:]))
        out.mkdir(parents=True, exist_ok=True)
        result = {"run": str(run), "drawn_scale": scale, "images": {}}
        colours = palette(model.n_classes_ + 1)
        for f, x, d in zip(files, X, dets):
            result["images"][f.name] = {
                "boxes": d.boxes.tolist(),
                "scores": d.scores.tolist(),
                "labels": d.labels.tolist(),
                "names": [model.class_name(int(c)) for c in d.labels],
            }
            pic = Image.fromarray((x.transpose(1, 2, 0).squeeze(-1) * 255).round().astype(np.uint8)).convert("RGB")
            pic = pic.resize((pic.width * scale, pic.height * scale), Image.NEAREST)
            draw = ImageDraw.Draw(pic)
            for box, score, label in zip(d.boxes, d.scores, d.labels):
                if score < 0.3:
                    continue  # drawn: the confident boxes only (the JSON has them all)
                colour = tuple(int(v) for v in colours[int(label) + 1])
                draw.rectangle([float(v) * scale for v in box], outline=colour, width=2)
                draw.text(
                    (float(box[0]) * scale + 2, float(box[1]) * scale + 1),
                    f"{model.class_name(int(label))} {score:.2f}",
                    fill=colour,
                )
            _save_png(pic, out / f"{f.stem}.png")
        write_json(out / "detections.json", result)
        n = sum(int((d.scores >= 0.3).sum()) for d in dets)
        return [
            f"{len(files)} images, {n} boxes scoring 0.3 or more -> {out}/detections.json and {len(files)} drawn images"
        ]
    masks = model.predict(X)
    colours = palette(model.n_outputs_)
    out.mkdir(parents=True, exist_ok=True)
    for f, m in zip(files, masks):
        _save_png(Image.fromarray(colours[m]), out / f"{f.stem}.png")
    legend = {"background": colours[0].tolist()}
    legend.update({model.class_name(k - 1): colours[k].tolist() for k in range(1, model.n_outputs_)})
    write_json(out / "classes.json", {"run": str(run), "colours": legend})
    return [f"{len(files)} colour masks -> {out} (colours in classes.json)"]
