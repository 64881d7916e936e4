"""Residual blocks shared by the one-class bottleneck (OCE) and the student decoder.

Standard ResNet ``BasicBlock``/``Bottleneck`` (no bias, BN after every conv). With ``upsample=True`` a stride-2
block *enlarges* its input instead: the strided 3×3 conv becomes a ConvTranspose k2 s2 (RD's ``de_resnet``), and
so does the shortcut projection.
"""
from __future__ import annotations

from torch import nn


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride, padding=1, bias=False)


def conv1x1(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 1, stride, bias=False)


def deconv2x2(cin: int, cout: int, stride: int = 2) -> nn.ConvTranspose2d:
    return nn.ConvTranspose2d(cin, cout, 2, stride, bias=False)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, shortcut: nn.Module | None = None,
                 base_width: int = 64, upsample: bool = False):
        super().__init__()
        self.conv1 = deconv2x2(inplanes, planes, stride) if upsample and stride == 2 else conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = shortcut

    def forward(self, x):
        identity = x if self.shortcut is None else self.shortcut(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1, shortcut: nn.Module | None = None,
                 base_width: int = 64, upsample: bool = False):
        super().__init__()
        width = int(planes * base_width / 64)          # WideResNet50-2: base_width 128 doubles the inner width
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = deconv2x2(width, width, stride) if upsample and stride == 2 else conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut = shortcut

    def forward(self, x):
        identity = x if self.shortcut is None else self.shortcut(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


def make_stage(block: str, inplanes: int, planes: int, blocks: int, stride: int = 1, base_width: int = 64,
               upsample: bool = False) -> nn.Sequential:
    """``blocks`` residual blocks; the first changes resolution (÷stride, or ×stride when ``upsample``) and width."""
    cls = BLOCKS[block]
    out = planes * cls.expansion
    shortcut = None
    if stride != 1 or inplanes != out:
        proj = deconv2x2(inplanes, out, stride) if upsample and stride == 2 else conv1x1(inplanes, out, stride)
        shortcut = nn.Sequential(proj, nn.BatchNorm2d(out))
    layers = [cls(inplanes, planes, stride, shortcut, base_width, upsample)]
    layers += [cls(out, planes, 1, None, base_width, upsample) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


def init_weights(module: nn.Module) -> None:
    """Official RD init: Kaiming-normal (fan_out, ReLU) for Conv2d, BN γ=1 β=0; ConvTranspose keeps PyTorch's default."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
