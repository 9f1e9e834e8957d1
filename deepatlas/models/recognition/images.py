"""``deepatlas predict RUN --input IMAGE|DIR --output OUT/`` for the recognition family.

Every image is read and checked first (the run's channels and size), so a bad input leaves
``OUT`` untouched. Then

- a ``keypoints`` run writes ``OUT/keypoints.json`` (per image, every joint's ``(x, y)`` in
  pixels, by name) and ``OUT/<image>.png``, the image with the predicted skeleton drawn;
- an ``embedding`` or ``eigenfaces`` run writes ``OUT/embeddings.csv`` (one row per image), and
  with ``--gallery DIR`` (one sub-folder per identity, or one image per identity named after it)
  ``OUT/identities.csv``: each image's most similar gallery identity and the cosine similarity.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepatlas._io import atomic_path, atomic_write_text, write_json
from deepatlas.errors import InputError
from deepatlas.models.vision.images import IMAGE_EXTENSIONS, MIN_DRAWN_SIDE, input_images, read_images


def draw_skeleton(image: np.ndarray, keypoints: np.ndarray, limbs, colours, scale: int):
    """A Pillow RGB image of ``image`` ``(C, H, W)`` in [0, 1], scaled up ``scale`` times, with
    the limbs drawn between the keypoints and a white dot on every joint."""
    from PIL import Image, ImageDraw

    arr = (np.clip(image, 0, 1).transpose(1, 2, 0) * 255).round().astype(np.uint8)
    pic = Image.fromarray(arr.squeeze(-1) if arr.shape[2] == 1 else arr).convert("RGB")
    pic = pic.resize((pic.width * scale, pic.height * scale), Image.NEAREST)
    draw = ImageDraw.Draw(pic)

    def at(p):
        return ((float(p[0]) + 0.5) * scale, (float(p[1]) + 0.5) * scale)

    for (a, b), colour in zip(limbs, colours):
        draw.line(
            [at(keypoints[a]), at(keypoints[b])], fill=tuple(int(255 * c) for c in colour), width=max(2, scale // 2)
        )
    r = max(2, scale // 2)
    for p in keypoints:
        x, y = at(p)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 255), outline=(0, 0, 0))
    return pic


def skeleton_grid(X: np.ndarray, keypoints: np.ndarray, limbs, path: Path, colours=None) -> None:
    """Up to 16 images with their skeletons, 4 to a row, as one PNG."""
    from PIL import Image

    from deepatlas.data.figures import LIMB_COLOURS

    colours = colours or (LIMB_COLOURS if len(limbs) == len(LIMB_COLOURS) else [(1.0, 1.0, 0.0)] * len(limbs))
    scale = 4
    tiles = [draw_skeleton(x, k, limbs, colours, scale) for x, k in zip(X[:16], keypoints[:16])]
    w, h = tiles[0].size
    cols = min(4, len(tiles))
    rows = -(-len(tiles) // cols)
    sheet = Image.new("RGB", (cols * w, rows * h))
    for i, t in enumerate(tiles):
        sheet.paste(t, ((i % cols) * w, (i // cols) * h))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        sheet.save(tmp, format="PNG")


def predict_keypoint_images(model, run: str, input_path: str, output: str) -> list[str]:
    files = input_images(input_path)
    X = read_images(files, tuple(int(s) for s in model.input_shape_))
    pred = model.predict(X)
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    scale = max(1, MIN_DRAWN_SIDE // max(X.shape[2:]))
    names = [model.joint_name(j) for j in range(model.n_joints_)]
    result = {"run": str(run), "coordinates": "(x, y) in pixels, pixel centres at integers", "images": {}}
    for f, x, k in zip(files, X, pred):
        result["images"][f.name] = {name: [float(v) for v in p] for name, p in zip(names, k)}
        pic = draw_skeleton(x, k, model.limbs_or_default(), model.limb_colours(), scale)
        with atomic_path(out / f"{f.stem}.png") as tmp:
            pic.save(tmp, format="PNG")
    write_json(out / "keypoints.json", result)
    return [
        f"{len(files)} images, {model.n_joints_} joints each -> {out}/keypoints.json and {len(files)} drawn skeletons"
    ]


def gallery_images(path: str, shape) -> tuple[np.ndarray, list[str]]:
    """``--gallery DIR``: images of one sub-folder per identity, or loose images named after their
    identity; every image must have the run's channels and size."""
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"--gallery {path!r} is not a folder (one sub-folder of images per identity).")
    subs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    pairs = [(d.name, f) for d in subs for f in sorted(d.iterdir()) if f.suffix.lower() in IMAGE_EXTENSIONS]
    if not subs:
        pairs = [(f.stem, f) for f in sorted(root.iterdir()) if f.suffix.lower() in IMAGE_EXTENSIONS]
    if not pairs:
        raise InputError(f"--gallery {path!r} holds no images ({', '.join(IMAGE_EXTENSIONS)}).")
    try:
        X = read_images([f for _, f in pairs], shape)
    except InputError as exc:  # name the gallery, not --input
        raise InputError(str(exc).replace("--input image", "--gallery image", 1)) from None
    return X, [name for name, _ in pairs]


def predict_embedding_images(model, run: str, input_path: str, output: str, gallery: str | None) -> list[str]:
    files = input_images(input_path)
    shape = tuple(int(s) for s in model.input_shape_)
    X = read_images(files, shape)
    G = gallery_images(gallery, shape) if gallery is not None else None
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    E = model.transform(X)
    rows = ["file," + ",".join(f"e{j}" for j in range(E.shape[1]))]
    rows += [f.name + "," + ",".join(f"{v:.6g}" for v in e) for f, e in zip(files, E)]
    atomic_write_text(out / "embeddings.csv", "\n".join(rows) + "\n")
    lines = [f"{len(files)} embeddings of {E.shape[1]} numbers -> {out}/embeddings.csv"]
    if G is not None:
        ids, sims = model.identify(X, *G)
        text = "file,identity,similarity\n" + "".join(f"{f.name},{i},{s:.6f}\n" for f, i, s in zip(files, ids, sims))
        atomic_write_text(out / "identities.csv", text)
        lines.append(f"identified against {len(set(G[1]))} gallery identities -> {out}/identities.csv")
    return lines
