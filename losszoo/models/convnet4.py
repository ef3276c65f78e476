"""The 4-block convolutional net common for Omniglot (Vinyals et al. 2016, Snell et al. 2017).

Four blocks of [conv 3x3 with 64 filters, BatchNorm, ReLU, 2x2 max-pool]: 28 x 28 grey images
shrink to 1 x 1 x 64, so global pooling gives 64 features. Small enough for CPU runs.
"""

from __future__ import annotations

from torch import Tensor, nn

from losszoo.models.input_spec import InputSpec
from losszoo.models.registry import Backbone, register_backbone

# Pixels in [0, 1] mapped to [-1, 1]. Omniglot's own statistics (about 0.92 mean, 0.27 std at
# 105 px: mostly white background) would do as well: the BatchNorm after the first convolution
# removes any per-channel affine change of the input.
CONVNET4_INPUT = InputSpec(channels=1, image_size=28, resize=28, mean=(0.5,), std=(0.5,))


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


class ConvNet4(nn.Module):
    """Four conv blocks then global average pooling: ``[B, C, H, W] -> [B, width]``."""

    def __init__(self, in_channels: int = 1, width: int = 64, blocks: int = 4) -> None:
        super().__init__()
        channels = [in_channels] + [width] * blocks
        self.features = nn.Sequential(*(_conv_block(a, b) for a, b in zip(channels, channels[1:])))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.width = width

    def forward(self, images: Tensor) -> Tensor:
        return self.pool(self.features(images)).flatten(1)


@register_backbone("convnet4")
def convnet4(pretrained: bool) -> Backbone:
    """No pretrained weights exist for this net: it always starts from random init."""
    net = ConvNet4(in_channels=CONVNET4_INPUT.channels)
    # NHWC: on CPU (oneDNN) this net trains about 1.3x and embeds about 2x faster than in NCHW
    # (benchmarks/bench_convnet4_layout.py).
    return Backbone(net, net.width, CONVNET4_INPUT, pretrained=False, channels_last=True)
