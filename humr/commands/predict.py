"""``humr predict``: hypotheses, meshes and figures for the people of one image."""
from __future__ import annotations

import argparse

HELP = ("run a model on an image with a detector's heatmaps (.npy) or keypoints (COCO / OpenPose "
        "JSON): humr predict --ckpt CKPT --image IMG --keypoints KP.json --out DIR")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", required=True, help="official humr_best.ckpt, a file of "
                        "`humr convert-official`, or a checkpoint of `humr train`")
    parser.add_argument("--image", required=True, help="RGB image (PNG / JPEG)")
    det = parser.add_mutually_exclusive_group(required=True)
    det.add_argument("--heatmaps", help="ViTPose heatmaps .npy (P, 17, 64, 48) of each person's 256x192 crop")
    det.add_argument("--keypoints", help="COCO results JSON or OpenPose BODY_25 JSON (keypoints with scores)")
    parser.add_argument("--bbox", type=float, nargs=4, action="append", metavar=("X0", "Y0", "X1", "Y1"),
                        help="person box in pixels (repeat once per person); default: around the "
                        "keypoints, or the whole image for heatmaps")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--body-model", default=None, help="SMPL-X folder / file for official checkpoints")
    parser.add_argument("--samples", type=int, default=25, help="hypotheses per person (default 25)")
    parser.add_argument("--meshes", type=int, default=5, help="hypothesis meshes written besides the mode")
    parser.add_argument("--mesh-format", choices=("obj", "ply"), default="obj")
    parser.add_argument("--seed", type=int, default=0)


def load_any(ckpt: str, body_model: str | None):
    """The model in ``ckpt``: official / converted (``humr.load_official``) or ``humr train``'s."""
    from humr.official.checkpoint import FORMAT, read_checkpoint

    try:
        raw = read_checkpoint(ckpt)
    except ValueError:        # not weights-only readable: a training checkpoint of humr's engine
        raw = {"state_dict": {}}
    if raw.get("format") == FORMAT or any(k.startswith("model.flow.module_list.") for k in raw["state_dict"]):
        from humr.official.checkpoint import load_official

        return load_official(ckpt, body_model=body_model)
    from humr.engine.module import HumrModule

    return HumrModule.from_checkpoint(ckpt).model


def run(args: argparse.Namespace) -> int:
    from humr.prediction import load_detections, predict, save_prediction

    if args.samples < 2:
        raise ValueError(f"--samples must be >= 2 (the mode and at least one hypothesis), got {args.samples}")
    det = load_detections(args.heatmaps or args.keypoints)
    model = load_any(args.ckpt, args.body_model)
    kwargs = {"heatmaps": det} if args.heatmaps else {"keypoints": det}
    pred = predict(model, args.image, bbox=args.bbox, num_samples=args.samples, seed=args.seed, **kwargs)
    files = save_prediction(pred, args.out, num_meshes=args.meshes, mesh_format=args.mesh_format)
    print(f"{pred['rotmat'].shape[0]} people, {args.samples} hypotheses each: wrote {len(files)} files to {args.out}")
    return 0
