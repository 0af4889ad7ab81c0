#!/usr/bin/python3
"""Fixtures for test/randaugment.test.ts: RandAugment's operations on fixed RGB images.

Run with Debian's interpreter (it has numpy and PIL 9.4):

    /usr/bin/python3 scripts/make-randaugment-fixtures.py

Writes test/fixtures/randaugment/{manifest.json, <image>.bin, expected.bin}: raw uint8
[H, W, 3] inputs, every case's expected output back to back, and a manifest that says
for each case what produced the expected bytes and how PIL compares.

Whose semantics: models/train/randaugment.ts follows the Perceiver reference
(perceiver/train/autoaugment.py: TF ops with TF 2.5 / tensorflow-addons 0.13), not
PIL. TensorFlow cannot be installed here, so this script renders each reference op in
numpy, float32 where TF computes in float32, and checks the rendering against PIL
wherever the two libraries mean the same thing:
  - exactly, for ops where TF and PIL agree (Equalize, Invert, Posterize >= 1 bit,
    Solarize, Brightness), and for the parts that agree when the part that differs is fed in
    (Image.blend with the reference's degenerate image for Color, Contrast, Sharpness;
    autocontrast in float64);
  - up to ties for the nearest-neighbour affine warps: PIL samples pixel centres and
    floors, TF samples integer coordinates and rounds half away from zero, in float32;
    with PIL's matrix shifted by half a pixel the two pick the same source pixel except
    where a coordinate lies within float error of a .5 tie; the script asserts that
    every disagreement is such a tie.
Where the reference differs from PIL, the expected bytes are the reference's, and the
manifest's `pil` entry says by how much PIL differs and why.

Project choices recorded here as in randaugment.ts: translate and cutout sizes are the
reference's constants at 224 px (100, 40) scaled by width/224 (translate_y by
height/224); a geometric op's sign is the reference's random negation, +1 = the
level as the reference's level_to_arg returns it before negation.
"""
import json
import math
import os

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'test', 'fixtures', 'randaugment')
F = np.float32
FILL = 128


def make_image(width, height, seed):
    """Gradients, noise and flat blocks; each channel short of the full 0..255 range."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    r = 20 + x * 199 // (width - 1) + rng.integers(-6, 7, (height, width))
    g = 5 + y * 245 // (height - 1)
    b = 90 + rng.integers(0, 61, (height, width))
    img = np.stack([r, g, b], -1)
    img[height // 6:height // 2, width // 2:width * 7 // 8] = (200, 100, 60)  # a flat block
    img[-3:, :4] = (128, 128, 128)  # a flat corner at the fill value
    return np.clip(img, 0, 255).astype(np.uint8)


# ---- the reference's ops, rendered in numpy (float32 where TF is float32) ----

def tf_blend(image1, image2, factor):
    """autoaugment.blend: image1 + factor * (image2 - image1) in float32, truncated to uint8."""
    if factor == 0.0:
        return image1.copy()
    if factor == 1.0:
        return image2.copy()
    a = image1.astype(F)
    temp = a + F(factor) * (image2.astype(F) - a)
    if 0.0 < factor < 1.0:
        return temp.astype(np.uint8)
    return np.clip(temp, F(0), F(255)).astype(np.uint8)


def tf_grayscale(image):
    """tf.image.rgb_to_grayscale on uint8: to float32 (x / 255), dot with
    (0.2989, 0.5870, 0.1140), back to uint8 by x * 255.5 truncated. The dot is summed
    in channel order without fused multiply-add (TF's matmul may differ in the last bit)."""
    f = image.astype(F) * F(1.0 / 255)
    w = [F(0.2989), F(0.5870), F(0.1140)]
    dot = (f[..., 0] * w[0] + f[..., 1] * w[1]) + f[..., 2] * w[2]
    return (dot * F(255.5)).astype(np.uint8)


def tf_color(image, factor):
    degenerate = np.repeat(tf_grayscale(image)[..., None], 3, -1)
    return tf_blend(degenerate, image, factor), degenerate


def tf_contrast_degenerate(image):
    """autoaugment.contrast's degenerate image: the reference sums the grey histogram
    and divides by 256, so its constant is height * width / 256 (the pixel count, not
    the mean grey level), clipped and truncated."""
    hist_sum = F(image.shape[0] * image.shape[1])
    mean = hist_sum / F(256.0)
    return np.full(image.shape, np.clip(mean, 0, 255).astype(np.uint8), np.uint8)


def tf_contrast(image, factor):
    degenerate = tf_contrast_degenerate(image)
    return tf_blend(degenerate, image, factor), degenerate


def tf_brightness(image, factor):
    return tf_blend(np.zeros_like(image), image, factor)


def tf_smooth(image):
    """autoaugment.sharpness's degenerate image: depthwise 3x3 [[1,1,1],[1,5,1],[1,1,1]]/13
    in float32 (taps summed in row-major order), clipped, truncated; the border keeps
    the original pixels."""
    k = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], F) / F(13.0)
    x = image.astype(F)
    h, w = image.shape[:2]
    acc = np.zeros((h - 2, w - 2, 3), F)
    for dy in range(3):
        for dx in range(3):
            acc = acc + x[dy:dy + h - 2, dx:dx + w - 2] * k[dy, dx]
    out = image.copy()
    out[1:-1, 1:-1] = np.clip(acc, F(0), F(255)).astype(np.uint8)
    return out


def tf_sharpness(image, factor):
    degenerate = tf_smooth(image)
    return tf_blend(degenerate, image, factor), degenerate


def tf_autocontrast(image, dtype=F):
    """autoaugment.autocontrast per channel: x * (255 / (hi - lo)) - lo * scale, clipped,
    truncated; float32 in the reference (dtype=float64 is PIL's arithmetic)."""
    out = np.empty_like(image)
    for c in range(3):
        ch = image[..., c]
        lo, hi = dtype(ch.min()), dtype(ch.max())
        if hi > lo:
            scale = dtype(255.0) / (hi - lo)
            offset = -lo * scale
            out[..., c] = np.clip(ch.astype(dtype) * scale + offset, 0, 255).astype(np.uint8)
        else:
            out[..., c] = ch
    return out


def tf_equalize(image):
    """autoaugment.equalize per channel (PIL's ImageOps.equalize, step = (count - last bin) // 255)."""
    out = np.empty_like(image)
    for c in range(3):
        ch = image[..., c].astype(np.int64)
        hist = np.bincount(ch.ravel(), minlength=256)
        nonzero = hist[hist != 0]
        step = (nonzero.sum() - nonzero[-1]) // 255
        if step == 0:
            out[..., c] = image[..., c]
            continue
        lut = (np.cumsum(hist) + step // 2) // step
        lut = np.clip(np.concatenate([[0], lut[:-1]]), 0, 255)
        out[..., c] = lut[ch].astype(np.uint8)
    return out


def tf_posterize(image, bits):
    """TF's bitwise shifts clamp the shift to 7 for uint8, so 0 bits acts as 1 bit."""
    shift = min(8 - bits, 7)
    return ((image >> shift) << shift).astype(np.uint8)


def tf_solarize(image, threshold):
    return np.where(image < threshold, image, 255 - image).astype(np.uint8)


def tf_solarize_add(image, addition, threshold=128):
    added = np.clip(image.astype(np.int64) + addition, 0, 255).astype(np.uint8)
    return np.where(image < threshold, added, image)


def tf_round(v):
    """std::round on a float32: half away from zero (in float64, where v + 0.5 is exact)."""
    v = v.astype(np.float64)
    return np.where(v >= 0, np.floor(v + 0.5), -np.floor(-v + 0.5))


def tf_transform(image, t):
    """ImageProjectiveTransformV3 (TF 2.5), NEAREST, constant fill, on the wrapped image:
    output (x, y) reads input (round(t0 x + t1 y + t2), round(t3 x + t4 y + t5)) in float32,
    and a rounded index outside the image gives the reference's replace value 128.
    Also returns the unrounded coordinates (for telling ties from errors)."""
    t = [F(v) for v in t]
    h, w = image.shape[:2]
    y, x = np.mgrid[0:h, 0:w]
    x, y = x.astype(F), y.astype(F)
    in_x = (t[0] * x + t[1] * y) + t[2]
    in_y = (t[3] * x + t[4] * y) + t[5]
    ix, iy = tf_round(in_x).astype(np.int64), tf_round(in_y).astype(np.int64)
    inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    out = np.full_like(image, FILL)
    out[inside] = image[iy[inside], ix[inside]]
    return out, in_x, in_y


def rotate_transform(degrees, h, w):
    """tfa.image.rotate's angles_to_projective_transforms, float32 throughout. cos and sin
    are rounded from float64 (TF's float32 kernels may differ by an ulp)."""
    radians = F(degrees) * F(math.pi / 180.0)
    cos, sin = F(math.cos(float(radians))), F(math.sin(float(radians)))
    wf, hf = F(w), F(h)
    x_off = ((wf - F(1)) - (cos * (wf - F(1)) - sin * (hf - F(1)))) / F(2)
    y_off = ((hf - F(1)) - (sin * (wf - F(1)) + cos * (hf - F(1)))) / F(2)
    return [cos, -sin, x_off, sin, cos, y_off]


def pil_affine(image, t):
    """PIL's AFFINE/NEAREST for the same map: PIL evaluates at pixel centres (x + 0.5) and
    floors, so shifting the offsets by half a pixel makes it floor(t . (x, y, 1) + 0.5)."""
    t = [float(v) for v in t]
    m = (t[0], t[1], t[2] + 0.5 - 0.5 * (t[0] + t[1]), t[3], t[4], t[5] + 0.5 - 0.5 * (t[3] + t[4]))
    im = Image.fromarray(image)
    return np.asarray(im.transform(im.size, Image.Transform.AFFINE, m, Image.Resampling.NEAREST, fillcolor=(FILL,) * 3))


def tf_cutout(image, pad, cy, cx):
    out = image.copy()
    h, w = image.shape[:2]
    out[max(0, cy - pad):min(h, cy + pad), max(0, cx - pad):min(w, cx + pad)] = FILL
    return out


# ---- magnitude (0..10) to argument, as the reference's level_to_arg ----

def enhance_factor(m):
    return (m / 10.0) * 1.8 + 0.1


def stats(a, b):
    d = np.abs(a.astype(np.int64) - b.astype(np.int64))
    return {'maxAbsDiff': int(d.max()), 'valuesDiffering': int((d > 0).sum())}


def main():
    images = {'main': make_image(32, 24, 1), 'odd': make_image(23, 17, 2)}
    os.makedirs(OUT, exist_ok=True)
    for name, img in images.items():
        img.tofile(os.path.join(OUT, f'{name}.bin'))
    cases = []
    blobs = []
    offset = 0

    def add(op, image, magnitude, expected, source, sign=None, arg=None, pil=None, **extra):
        nonlocal offset
        assert expected.dtype == np.uint8 and expected.shape == images[image].shape
        case = {'op': op, 'image': image, 'magnitude': magnitude}
        if sign is not None:
            case['sign'] = sign
        if arg is not None:
            case['arg'] = arg
        case.update(extra)
        case.update({'offset': offset, 'source': source})
        if pil is not None:
            case['pil'] = pil
        cases.append(case)
        blobs.append(expected.tobytes())
        offset += expected.size

    same = 'PIL and the reference agree; expected = PIL, equal to the numpy rendering'
    ref = 'reference rendered in numpy'

    for name, img in images.items():
        pil_img = Image.fromarray(img)

        # AutoContrast: float32 in the reference, float64 in PIL.
        expected = tf_autocontrast(img)
        pil_out = np.asarray(ImageOps.autocontrast(pil_img))
        assert (tf_autocontrast(img, np.float64) == pil_out).all(), 'autocontrast in float64 must be PIL'
        add('AutoContrast', name, 5, expected, ref, pil={'call': 'ImageOps.autocontrast', **stats(pil_out, expected),
            'why': 'PIL scales in float64, the reference in float32: x * scale + offset can land just below an integer'})

        pil_out = np.asarray(ImageOps.equalize(pil_img))
        assert (tf_equalize(img) == pil_out).all(), 'equalize'
        add('Equalize', name, 5, pil_out, same, pil={'call': 'ImageOps.equalize', **stats(pil_out, tf_equalize(img))})

    img = images['main']
    pil_img = Image.fromarray(img)

    pil_out = np.asarray(ImageOps.invert(pil_img))
    assert (pil_out == 255 - img).all()
    add('Invert', 'main', 5, pil_out, same, pil={'call': 'ImageOps.invert', **stats(pil_out, 255 - img)})

    for m in [0, 2, 3, 5, 8, 10]:
        bits = int((m / 10.0) * 4)
        expected = tf_posterize(img, bits)
        pil_out = np.asarray(ImageOps.posterize(pil_img, bits))
        if bits >= 1:
            assert (pil_out == expected).all()
            add('Posterize', 'main', m, expected, same, arg=bits, pil={'call': f'ImageOps.posterize({bits})', **stats(pil_out, expected)})
        else:
            add('Posterize', 'main', m, expected, ref, arg=bits, pil={'call': 'ImageOps.posterize(0)', **stats(pil_out, expected),
                'why': "TF clamps the uint8 shift of 8 to 7, so 0 bits keeps the top bit; PIL's 0 bits is black"})

    for m in [2, 5, 8, 10]:
        threshold = int((m / 10.0) * 256)
        expected = tf_solarize(img, threshold)
        pil_out = np.asarray(ImageOps.solarize(pil_img, threshold))
        assert (pil_out == expected).all()
        note = {} if threshold < 256 else {'note': "the reference's uint8 comparison cannot hold 256; PIL's threshold 256 leaves the image as it is"}
        add('Solarize', 'main', m, expected, same, arg=threshold, pil={'call': f'ImageOps.solarize({threshold})', **stats(pil_out, expected)}, **note)

    for m in [3, 5, 10]:
        addition = int((m / 10.0) * 110)
        add('SolarizeAdd', 'main', m, tf_solarize_add(img, addition), ref + ' (PIL has no SolarizeAdd)', arg=addition)

    for m in [0, 2, 5, 7, 10]:
        f = enhance_factor(m)
        # Brightness: the same blend with black in both.
        expected = tf_brightness(img, f)
        pil_out = np.asarray(ImageEnhance.Brightness(pil_img).enhance(f))
        assert (pil_out == expected).all(), f'brightness {f}'
        add('Brightness', 'main', m, expected, same, arg=f, pil={'call': f'ImageEnhance.Brightness.enhance({f})', **stats(pil_out, expected)})

        for op, render, enhancer, why in [
            ('Color', tf_color, ImageEnhance.Color,
             "PIL's grey is L = (299 R + 587 G + 114 B) / 1000 rounded; TF's is (0.2989, 0.5870, 0.1140) . RGB / 255 * 255.5 truncated"),
            ('Contrast', tf_contrast, ImageEnhance.Contrast,
             "PIL blends with the rounded mean grey level; the reference's constant is height * width / 256 (its histogram sum over 256 bins), clipped to 255 (196 at 224 x 224)"),
            ('Sharpness', tf_sharpness, ImageEnhance.Sharpness,
             "PIL's SMOOTH filter rounds; the reference's float32 convolution truncates"),
        ]:
            expected, degenerate = render(img, f)
            # The blend itself is PIL's: Image.blend with the reference's degenerate image.
            blended = np.asarray(Image.blend(Image.fromarray(degenerate), pil_img, f))
            assert (blended == expected).all(), f'{op} blend {f}'
            pil_out = np.asarray(enhancer(pil_img).enhance(f))
            add(op, 'main', m, expected, ref + "; equal to PIL's Image.blend of the reference's degenerate image", arg=f,
                pil={'call': f'ImageEnhance.{op}.enhance({f})', **stats(pil_out, expected), 'why': why})

    # Geometric ops: the reference's transform, and PIL's warp of the same map.
    h, w = img.shape[:2]
    geometric = []
    for name in images:
        hh, ww = images[name].shape[:2]
        mags = [3, 5, 10] if name == 'main' else [7]
        for m in mags:
            for sign in [1, -1]:
                degrees = sign * (m / 10.0) * 30.0
                geometric.append(('Rotate', name, m, sign, degrees, rotate_transform(degrees, hh, ww)))
                level = sign * (m / 10.0) * 0.3
                geometric.append(('ShearX', name, m, sign, level, [1.0, level, 0.0, 0.0, 1.0, 0.0]))
                geometric.append(('ShearY', name, m, sign, level, [1.0, 0.0, 0.0, level, 1.0, 0.0]))
                px = sign * (m / 10.0) * 100.0 * (ww / 224.0)
                geometric.append(('TranslateX', name, m, sign, px, [1.0, 0.0, px, 0.0, 1.0, 0.0]))
                py = sign * (m / 10.0) * 100.0 * (hh / 224.0)
                geometric.append(('TranslateY', name, m, sign, py, [1.0, 0.0, 0.0, 0.0, 1.0, py]))
    for op, name, m, sign, arg, t in geometric:
        src = images[name]
        expected, in_x, in_y = tf_transform(src, t)
        pil_out = pil_affine(src, t)
        differ = (pil_out != expected).any(-1)
        # Every pixel where PIL picks another source pixel must sit on a rounding tie.
        tie = (np.abs(in_x - np.floor(in_x) - 0.5) < 1e-4) | (np.abs(in_y - np.floor(in_y) - 0.5) < 1e-4)
        assert not (differ & ~tie).any(), f'{op} {name} {m} {sign}: PIL disagrees off a tie'
        add(op, name, m, expected, ref, sign=sign, arg=float(arg), pil={
            'call': 'Image.transform(AFFINE, NEAREST) with the map shifted half a pixel',
            'pixelsDiffering': int(differ.sum()), 'pixelsOnTies': int(tie.sum()),
            'why': 'only at .5 ties: TF rounds float32 coordinates half away from zero, PIL floors float64 (or 16.16 fixed point) ones'})

    for m, cy, cx in [(5, 0, 0), (5, 10, 15), (10, 23, 31), (10, 12, 3)]:
        pad = int((m / 10.0) * 40 * (w / 224.0))
        add('Cutout', 'main', m, tf_cutout(img, pad, cy, cx), ref, arg=pad, centre=[cy, cx])

    with open(os.path.join(OUT, 'expected.bin'), 'wb') as fh:
        for b in blobs:
            fh.write(b)
    manifest = {
        'generator': 'scripts/make-randaugment-fixtures.py (run with /usr/bin/python3: numpy + PIL ' + Image.__version__ + ')',
        'reference': 'perceiver/train/autoaugment.py (TF 2.5, tensorflow-addons 0.13), rendered in numpy; PIL as the independent check',
        'layout': 'uint8 [height, width, 3] row-major; a case\'s expected bytes start at `offset` in expected.bin and span the image',
        'images': {n: {'file': f'{n}.bin', 'width': int(i.shape[1]), 'height': int(i.shape[0])} for n, i in images.items()},
        'expected': 'expected.bin',
        'cases': cases,
    }
    # One case a line: small, and a reader can grep it.
    text = json.dumps({k: v for k, v in manifest.items() if k != 'cases'}, indent=1)[:-2]
    text += ',\n "cases": [\n' + ',\n'.join('  ' + json.dumps(c) for c in cases) + '\n ]\n}\n'
    json.loads(text)
    with open(os.path.join(OUT, 'manifest.json'), 'w') as fh:
        fh.write(text)
    print(f'{len(cases)} cases, {offset} expected bytes')
    for c in cases:
        if 'pil' in c:
            p = c['pil']
            print(c['op'], c['image'], c['magnitude'], c.get('sign', ''), {k: v for k, v in p.items() if k not in ('call', 'why')})


if __name__ == '__main__':
    main()
