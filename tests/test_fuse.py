"""The fused module: uint8 frames in, uint8 frames out, equal to the step-by-step computation.

The networks are the registry's small variants (``mimo-unet-lite`` and ``nafnet-tiny`` built with their
``tiny_kwargs``), random weights with a fixed seed; the frames are real Kodak photographs.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from b2b_stream.fuse import FusedDeblur, full_resolution, net_multiple, pad_to_multiple
from conftest import real_frames, tiny_nets

def unfused(tr, db, frames: np.ndarray, multiple: int = 1) -> np.ndarray:
    """What an app without the fused module does, frame by frame, through b2b_train.data.io."""
    from b2b_train.data.io import to_tensor, to_uint8

    outs = []
    with torch.no_grad():
        for img in frames:
            h, w = img.shape[:2]
            x = pad_to_multiple(to_tensor(img)[None], multiple, mode="replicate")
            if tr is not None:
                x = tr(x)
                x = (x[-1] if isinstance(x, (list, tuple)) else x).clamp(0, 1)
            y = db(x)[:, :, :h, :w]
            outs.append(to_uint8(y))
    return np.stack(outs)


@pytest.fixture(scope="module")
def nets():
    return tiny_nets()


def test_fused_equals_unfused_bit_exactly(nets, kodak_images):
    tr, db, m = nets
    frames = real_frames(kodak_images, 2, 4 * m, 6 * m)  # already a multiple: no padding anywhere
    fused = FusedDeblur(tr, db, multiple=m).eval()
    with torch.no_grad():
        got = fused(torch.from_numpy(frames)).numpy()
    assert got.dtype == np.uint8 and got.shape == frames.shape
    ref = unfused(tr, db, frames)
    assert np.array_equal(got, ref)
    # and the networks did something: the output is not the input
    assert np.abs(got.astype(int) - frames.astype(int)).mean() > 0.5


def test_padding_to_the_multiple_is_cropped_back(nets, kodak_images):
    tr, db, m = nets
    frames = real_frames(kodak_images, 1, 3 * m + 5, 5 * m + 3, offset=3)  # odd sizes
    fused = FusedDeblur(tr, db, multiple=m).eval()
    with torch.no_grad():
        got = fused(torch.from_numpy(frames)).numpy()
    assert got.shape == frames.shape
    assert np.array_equal(got, unfused(tr, db, frames, multiple=m))


def test_translator_list_or_full_only_give_the_same(nets, kodak_images):
    tr, db, m = nets

    class FullOnly(nn.Module):  # what b2b_train.nets.translator_io.load_translator may return
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x)[-1]

    frames = torch.from_numpy(real_frames(kodak_images, 1, 2 * m, 3 * m))
    with torch.no_grad():
        a = FusedDeblur(tr, db, multiple=m)(frames)
        b = FusedDeblur(FullOnly(tr), db, multiple=m)(frames)
    assert torch.equal(a, b)
    with torch.no_grad():
        outs = tr(torch.rand(1, 3, 4 * m, 4 * m))
    assert isinstance(outs, (list, tuple)) and outs[-1].shape[-1] == 4 * m  # full scale is last
    assert full_resolution(outs) is outs[-1]


def test_bgr_order_and_deblurrer_alone(nets, kodak_images):
    tr, db, m = nets
    frames = torch.from_numpy(real_frames(kodak_images, 1, 2 * m, 2 * m + 7, offset=5))
    with torch.no_grad():
        rgb = FusedDeblur(tr, db, multiple=m)(frames)
        bgr = FusedDeblur(tr, db, multiple=m, channel_order="bgr")(frames.flip(-1).contiguous())
        alone = FusedDeblur(None, db, multiple=m)(frames)
    assert torch.equal(bgr.flip(-1), rgb)
    assert np.array_equal(alone.numpy(), unfused(None, db, frames.numpy(), multiple=m))
    assert not torch.equal(alone, rgb)  # the translator changes the result


def test_half_precision_module_casts_inside(nets):
    tr, db, m = nets
    fused = FusedDeblur(tr, db, multiple=m)
    import copy

    half = copy.deepcopy(fused).half()
    assert half.compute_dtype == torch.float16 and fused.compute_dtype == torch.float32
    assert all(p.dtype == torch.float16 for p in half.parameters())


def test_net_multiple_and_arguments():
    class A(nn.Module):
        multiple = 4

    class B(nn.Module):
        multiple = 6

    assert net_multiple(A(), B()) == 12
    assert net_multiple(None, A()) == 4
    assert net_multiple(nn.Identity(), default=8) == 8
    with pytest.raises(ValueError):
        FusedDeblur(None, nn.Identity(), channel_order="xyz")
    with pytest.raises(ValueError):
        FusedDeblur(None, nn.Identity(), pad_mode="zeros")
    x = torch.arange(2 * 3 * 5 * 7, dtype=torch.float32).view(2, 3, 5, 7)
    p = pad_to_multiple(x, 4, mode="replicate")
    assert p.shape == (2, 3, 8, 8) and torch.equal(p[..., :5, :7], x)
    assert torch.equal(p[..., 7, :7], x[..., 4, :])  # replicate: last row repeated
    assert pad_to_multiple(x, 1) is x


def test_identity_networks_round_trip_exactly(kodak_images):
    """With identity networks the whole chain (cast, pad, crop, round) must return the input bytes."""
    frames = torch.from_numpy(real_frames(kodak_images, 2, 45, 61))
    for order in ("rgb", "bgr"):
        for mode in ("replicate", "reflect"):
            f = FusedDeblur(nn.Identity(), nn.Identity(), multiple=16, channel_order=order, pad_mode=mode)
            assert torch.equal(f(frames), frames)
