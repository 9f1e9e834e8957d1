"""``deepatlas export RUN``: write the run's model as ONNX (or OpenVINO IR, or TFLite), checked for parity.

``--quantize int8|dynamic`` also writes the quantised file (``model.int8.onnx``...) and prints its
test accuracy beside the float file's, and both sizes.

Prints the exporter used, the largest difference between onnxruntime and torch on the run's
held-out data and on random inputs, and where the file and its JSON sidecar went. Exit status 1
(one line, no traceback) when a parity check fails; 2 on a user error.
"""

from __future__ import annotations

import sys


def cmd_export(args) -> int:
    from pathlib import Path

    from deepatlas._io import check_writable
    from deepatlas.export import ParityError, export

    # The file is checked before the export (minutes for some models), not after it.
    if args.out:
        check_writable(args.out, "--out")
    elif Path(args.run).is_dir():
        check_writable(Path(args.run) / "model.onnx", "RUN")
    try:
        result = export(
            args.run,
            args.out,
            format=args.format,
            opset=args.opset,
            part=args.part,
            exporter=args.exporter,
            tolerance=args.tolerance,
            quantize=args.quantize,
        )
    except ParityError as exc:
        print(f"deepatlas export: parity check failed: {exc}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a trained run to ONNX, OpenVINO or TFLite with parity checks")
    p.add_argument("run", help="run directory")
    p.add_argument(
        "--format", choices=("onnx", "openvino", "tflite"), default="onnx", help="file format (default onnx)"
    )
    p.add_argument(
        "--out", metavar="FILE", help="file to write (default RUN/model.onnx, RUN/model.xml or RUN/model.tflite)"
    )
    p.add_argument(
        "--quantize",
        choices=("int8", "dynamic"),
        help="also write an int8 file (int8: static, calibrated on the training split; dynamic: int8 weights) "
        "and report its test accuracy and size beside the float file's",
    )
    p.add_argument("--opset", type=int, help="ONNX opset version (default: the exporter's)")
    p.add_argument("--part", help="inference path for models with several (e.g. encoder, decoder)")
    p.add_argument(
        "--exporter",
        choices=("dynamo", "torchscript"),
        default="dynamo",
        help="torch.onnx exporter (default dynamo, falling back to torchscript with a note)",
    )
    p.add_argument("--tolerance", type=float, default=1e-4, help="largest allowed |onnxruntime - torch| (1e-4)")
    p.set_defaults(func=cmd_export)
