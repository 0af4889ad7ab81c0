#!/usr/bin/python3
"""Fixtures for test/nn-interpolate.test.ts: torch.nn.functional.interpolate.

Run with Debian's interpreter (python3-torch 1.13; the bilinear and bicubic kernels
it runs are the ones torch 2.x still runs):

    /usr/bin/python3 scripts/make-interpolate-fixtures.py

Writes test/fixtures/interpolate/cases.safetensors: for each case an input
`<name>.x` [N, C, H, W] (float32, normal draws from a fixed seed) and torch's output
`<name>.y`, with the case's size, mode and align_corners in the header's metadata.
"""
import json
import struct

import torch
import torch.nn.functional as F

CASES = [
    # name, input shape, output size, mode, align_corners
    ('bicubic_up', (2, 3, 4, 5), (7, 9), 'bicubic', False),
    ('bicubic_down', (1, 4, 9, 8), (4, 3), 'bicubic', False),
    ('bicubic_mixed', (1, 2, 5, 5), (3, 8), 'bicubic', False),
    ('bicubic_align', (1, 2, 4, 6), (7, 5), 'bicubic', True),
    ('bicubic_one', (1, 2, 1, 3), (4, 1), 'bicubic', False),
    # The learned-position classifier's case at a miniature scale: a square table to
    # another square, as HF's interpolate_pos_encoding does.
    ('bicubic_table', (1, 16, 6, 6), (10, 10), 'bicubic', False),
    ('bilinear_up', (2, 3, 4, 5), (7, 9), 'bilinear', False),
    ('bilinear_down', (1, 4, 9, 8), (4, 3), 'bilinear', False),
    ('bilinear_align', (1, 2, 4, 6), (7, 5), 'bilinear', True),
    ('bilinear_one', (1, 2, 1, 3), (4, 1), 'bilinear', True),
    ('nearest_up', (1, 2, 3, 5), (7, 4), 'nearest', None),
    ('nearest_down', (2, 1, 9, 7), (4, 3), 'nearest', None),
]


def main():
    g = torch.Generator().manual_seed(20261126)
    tensors = {}
    meta = {}
    for name, shape, size, mode, align in CASES:
        x = torch.randn(shape, generator=g)
        tensors[f'{name}.x'] = x
        tensors[f'{name}.y'] = F.interpolate(x, size=size, mode=mode, align_corners=align)
        meta[name] = json.dumps({'size': list(size), 'mode': mode, 'align_corners': bool(align)})
    meta['torch'] = torch.__version__
    write_safetensors('test/fixtures/interpolate/cases.safetensors', tensors, meta)


def write_safetensors(path, tensors, meta):
    header = {'__metadata__': meta}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        raw = t.numpy().tobytes()
        header[name] = {'dtype': 'F32',
                        'shape': list(t.shape), 'data_offsets': [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


if __name__ == '__main__':
    main()
