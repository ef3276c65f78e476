"""torchvision backbones: ResNet-18/34/50/101 (He et al. 2016) and GoogLeNet (Szegedy et al. 2015).

Each keeps its global average pooling ("pool5") and drops the classifier, as Zhai & Wu do
(Sec. 4.1: an embedding layer on the pool5 features of an ImageNet-pretrained network).
Pretrained weights are torchvision's ``IMAGENET1K_V1`` for every net: the original ImageNet
weights the paper used (resize 256, crop 224; 227 for GoogLeNet). ResNet-50/101 also have
``IMAGENET1K_V2`` (a newer training recipe, resize 232), not used here.
"""

from __future__ import annotations

import functools

from torch import nn

from losszoo.models.input_spec import imagenet_input_spec
from losszoo.models.pretrained import load_torchvision_weights
from losszoo.models.registry import Backbone, register_backbone

PAPER_WEIGHTS = "IMAGENET1K_V1"
RESNET_DEPTHS = (18, 34, 50, 101)


def _resnet(arch: str, pretrained: bool) -> Backbone:
    from torchvision import models

    net = models.get_model(arch, weights=None)
    record = None
    if pretrained:
        state, record = load_torchvision_weights(models.get_model_weights(arch)[PAPER_WEIGHTS], arch)
        net.load_state_dict(state)
    feature_dim = net.fc.in_features
    net.fc = nn.Identity()
    # NHWC: see benchmarks/bench_cpu_train.py (oneDNN's NHWC kernels, with the allocator tuned).
    return Backbone(net, feature_dim, imagenet_input_spec(224), pretrained, weights=record,
                    head_keys=("fc.",), channels_last=True)


for _depth in RESNET_DEPTHS:
    register_backbone(f"resnet{_depth}")(functools.partial(_resnet, f"resnet{_depth}"))


@register_backbone("googlenet")
def googlenet(pretrained: bool) -> Backbone:
    """GoogLeNet (Inception v1) pool5 features, 1024 wide, on 227 x 227 crops (Sec. 4.1).

    As torchvision's own builder does: with pretrained weights the auxiliary classifiers are
    built to load the checkpoint and then removed, and ``transform_input=True`` maps
    ImageNet-normalized input to the range those ported weights were trained on. Without
    weights: no auxiliary heads, no input transform, torchvision's truncated-normal init
    (passing ``init_weights`` explicitly silences its FutureWarning).
    """
    from torchvision import models

    record = None
    if pretrained:
        net = models.googlenet(weights=None, aux_logits=True, transform_input=True,
                               init_weights=False)
        state, record = load_torchvision_weights(models.GoogLeNet_Weights[PAPER_WEIGHTS], "googlenet")
        net.load_state_dict(state)
        net.aux_logits = False
        net.aux1 = net.aux2 = None
    else:
        net = models.googlenet(weights=None, aux_logits=False, transform_input=False,
                               init_weights=True)
    feature_dim = net.fc.in_features
    net.dropout = nn.Identity()  # the dropout sits between pool5 and the classifier
    net.fc = nn.Identity()
    # A --weights file is loaded into the net built without weights (no input transform).
    return Backbone(net, feature_dim, imagenet_input_spec(227), pretrained, weights=record,
                    head_keys=("fc.", "aux1.", "aux2."))
