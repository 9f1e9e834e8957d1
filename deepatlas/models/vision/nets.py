"""The networks of the vision family.

- :class:`UNet`: an encoder of ``Conv-BN-ReLU`` x2 blocks with 2x2 max pools, and a decoder that
  upsamples (transposed convolution) and concatenates the encoder's features of the same
  resolution before two more convolutions (Ronneberger, Fischer & Brox, 2015). The skips give the
  decoder exact positions back; the pooled path gives it the context that tells a 3 from an 8.
  ``coarse_scores=True`` adds the coarsest features' class scores, upsampled, to the output (the
  segmenter's choice).
- :class:`FCN`: the same encoder and a 1x1 classifier at the coarsest level, upsampled
  bilinearly to the input size with no skips (Long, Shelhamer & Darrell, 2015, "FCN-32s"): the
  ablation that shows what the skips buy.

Both take ``(B, C, H, W)`` with ``H`` and ``W`` multiples of ``2 ** depth`` and are fully
convolutional, so a network trained on 64x64 runs unchanged on 96x96. ``out_level`` stops the
U-Net's decoder early: its output then has stride ``2 ** out_level`` (the detector's heads read
stride-4 features).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class Encoder(nn.Module):
    """``channels[0]`` at full resolution, then one pool and block per further entry."""

    def __init__(self, c_in: int, channels: tuple[int, ...]):
        super().__init__()
        self.blocks = nn.ModuleList()
        for c in channels:
            self.blocks.append(double_conv(c_in, c))
            c_in = c

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for i, block in enumerate(self.blocks):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            feats.append(x)
        return feats  # strides 1, 2, 4, ...


class UNet(nn.Module):
    """(B, C, H, W) -> (B, n_out, H / 2**out_level, W / 2**out_level)."""

    def __init__(
        self, c_in: int, channels: tuple[int, ...], n_out: int, out_level: int = 0, coarse_scores: bool = False
    ):
        super().__init__()
        self.encoder = Encoder(c_in, channels)
        # FCN-style fusion of scores (Long et al., 2015): class scores of the coarsest features,
        # upsampled and added to the fine head's, give the context a direct path to the output
        self.coarse = nn.Conv2d(channels[-1], n_out, 1) if coarse_scores else None
        self.coarse_stride = 2 ** (len(channels) - 1 - out_level)
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        for level in range(len(channels) - 1, out_level, -1):  # coarse to fine
            c_hi, c_lo = channels[level], channels[level - 1]
            self.ups.append(nn.ConvTranspose2d(c_hi, c_lo, 2, stride=2))
            self.decoders.append(double_conv(2 * c_lo, c_lo))
        self.head = nn.Conv2d(channels[out_level], n_out, 1)
        self.out_channels = channels[out_level]

    def _decode(self, feats: list[torch.Tensor]) -> torch.Tensor:
        y = feats[-1]
        for k, (up, dec) in enumerate(zip(self.ups, self.decoders)):
            skip = feats[len(feats) - 2 - k]
            y = dec(torch.cat([up(y), skip], dim=1))
        return y

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self._decode(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.encoder(x)
        out = self.head(self._decode(feats))
        if self.coarse is not None:
            coarse = self.coarse(feats[-1])
            out = out + F.interpolate(
                coarse, scale_factor=float(self.coarse_stride), mode="bilinear", align_corners=False
            )
        return out


class FCN(nn.Module):
    """(B, C, H, W) -> (B, n_out, H, W): classify the coarsest features, upsample bilinearly."""

    def __init__(self, c_in: int, channels: tuple[int, ...], n_out: int):
        super().__init__()
        self.encoder = Encoder(c_in, channels)
        self.head = nn.Conv2d(channels[-1], n_out, 1)
        self.stride = 2 ** (len(channels) - 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        coarse = self.head(self.encoder(x)[-1])
        return F.interpolate(coarse, scale_factor=float(self.stride), mode="bilinear", align_corners=False)


class CenterNetHead(nn.Module):
    """Stride-``2**out_level`` U-Net features -> (B, K + 4, h, w): K class heatmap logits, then
    box width and height (in input pixels, log scale) and the centre's sub-cell offset."""

    def __init__(self, c_in: int, channels: tuple[int, ...], n_classes: int, out_level: int, head_channels: int):
        super().__init__()
        self.body = UNet(c_in, channels, 1, out_level)
        c = self.body.out_channels

        def branch(n_out: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(c, head_channels, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(head_channels, n_out, 1)
            )

        self.heat = branch(n_classes)
        self.box = branch(4)
        with torch.no_grad():  # start every heatmap at probability 0.01 (CenterNet, following RetinaNet)
            self.heat[-1].bias.fill_(-4.6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.body.features(x)
        return torch.cat([self.heat(f), self.box(f)], dim=1)
