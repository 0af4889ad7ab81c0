#!/usr/bin/env python3
"""Writes the weights of each HF fixture model (test/fixtures/hf/<case>/model.safetensors)
as DeepMind's Haiku checkpoints would hold them, into test/fixtures/haiku/:

  <case>.pickle / <case>.pystate   the checkpoint as the released files are laid out
  <case>.params.safetensors        the same arrays under their Haiku names
  <case>.state.safetensors         (image_conv) the BatchNorm state, likewise

The rename here goes the other way from models/haiku.ts (HF key -> Haiku module path,
PyTorch layout -> Haiku layout) and is written independently of it, from the module
names of DeepMind's perceiver.py / io_processors.py and the released colabs, so the
two can check each other: models/haiku.ts must recover every HF tensor exactly.

Needs python3 and numpy only (`apt-get install -y python3-numpy`). Deterministic:
rerunning gives byte-identical files.
"""
import json
import os
import pickle
import re
import struct
import sys

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
HF = os.path.join(ROOT, 'test', 'fixtures', 'hf')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'haiku')

DTYPES = {'F32': np.float32, 'F64': np.float64, 'I64': np.int64, 'I32': np.int32}
ST_NAMES = {np.dtype(np.float32): 'F32', np.dtype(np.int32): 'I32', np.dtype(np.int64): 'I64'}


def read_safetensors(path):
    with open(path, 'rb') as f:
        (n,) = struct.unpack('<Q', f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == '__metadata__':
            continue
        a, b = e['data_offsets']
        out[name] = np.frombuffer(data[a:b], dtype=DTYPES[e['dtype']]).reshape(e['shape']).copy()
    return out


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name in sorted(tensors):
        arr = np.asarray(tensors[name], order='C')  # ascontiguousarray would make a 0-d array 1-d
        raw = arr.astype(arr.dtype.newbyteorder('<')).tobytes()
        header[name] = {'dtype': ST_NAMES[arr.dtype], 'shape': list(arr.shape), 'data_offsets': [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    js = json.dumps(header, separators=(',', ':')).encode()
    js += b' ' * ((8 - len(js) % 8) % 8)
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        f.write(struct.pack('<Q', len(js)))
        f.write(js)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


# Inside a CrossAttention / SelfAttention module: HF's name -> Haiku's path and param.
ATTN = {
    'attention.self.query': 'attention/linear',
    'attention.self.key': 'attention/linear_1',
    'attention.self.value': 'attention/linear_2',
    'attention.output.dense': 'attention/linear_3',
    'mlp.dense1': 'mlp/linear',
    'mlp.dense2': 'mlp/linear_1',
}
CROSS_LN = {'attention.self.layernorm1': 'layer_norm', 'attention.self.layernorm2': 'layer_norm_1', 'layernorm': 'layer_norm_2'}
SELF_LN = {'attention.self.layernorm1': 'layer_norm', 'layernorm': 'layer_norm_1'}


def block(rest, norms):
    """'mlp.dense1.weight' -> ('mlp/linear', 'w', 'linear')."""
    mod, _, leaf = rest.rpartition('.')
    if mod in ATTN:
        return ATTN[mod], {'weight': 'w', 'bias': 'b'}[leaf], 'linear'
    if mod in norms:
        return norms[mod], {'weight': 'scale', 'bias': 'offset'}[leaf], 'as_is'
    raise KeyError(rest)


def linear(mod, leaf):
    return mod, {'weight': 'w', 'bias': 'b'}[leaf], 'linear'


def inverse(key, case):
    """HF key -> (collection, Haiku module path, Haiku param name, layout) or None to drop."""
    enc = 'encoder' if case == 'multimodal' else 'perceiver_encoder'
    outer = {'optical_flow': 'flow_decoder', 'multimodal': 'multimodal_decoder'}.get(case, 'classification_decoder')
    ip = 'perceiver.input_preprocessor.'
    if key == 'perceiver.embeddings.latents':
        return 'params', f'{enc}/~/trainable_position_encoding', 'pos_embs', 'as_is'
    m = re.fullmatch(r'perceiver\.encoder\.cross_attention\.(.+)', key)
    if m:
        mod, p, lay = block(m.group(1), CROSS_LN)
        return 'params', f'{enc}/~/cross_attention/{mod}', p, lay
    m = re.fullmatch(r'perceiver\.encoder\.self_attends\.(\d+)\.(.+)', key)
    if m:
        i = int(m.group(1))
        mod, p, lay = block(m.group(2), SELF_LN)
        return 'params', f'{enc}/~/self_attention{"" if i == 0 else "_%d" % i}/{mod}', p, lay
    # decoders
    m = re.fullmatch(r'perceiver\.decoder\.decoding_cross_attention\.(.+)', key)
    if m:
        mod, p, lay = block(m.group(1), CROSS_LN)
        return 'params', f'basic_decoder/cross_attention/{mod}', p, lay
    if key == 'perceiver.decoder.output_position_encodings.position_embeddings':
        return 'params', 'basic_decoder/~/trainable_position_encoding', 'pos_embs', 'as_is'
    m = re.fullmatch(r'perceiver\.decoder\.decoder\.decoding_cross_attention\.(.+)', key)
    if m:
        mod, p, lay = block(m.group(1), CROSS_LN)
        return 'params', f'{outer}/~/basic_decoder/cross_attention/{mod}', p, lay
    m = re.fullmatch(r'perceiver\.decoder\.decoder\.final_layer\.(weight|bias)', key)
    if m:
        return ('params', f'{outer}/~/basic_decoder/output') + linear('', m.group(1))[1:]
    if key in ('perceiver.decoder.decoder.output_position_encodings.position_embeddings',
               'perceiver.decoder.modalities.label.decoder.output_position_encodings.position_embeddings'):
        return 'params', 'classification_decoder/~/basic_decoder/~/trainable_position_encoding', 'pos_embs', 'as_is'
    m = re.fullmatch(r'perceiver\.decoder\.padding\.(\w+)', key)
    if m:
        return 'params', f'multimodal_decoder/~decoder_query/{m.group(1)}_padding', 'pos_embs', 'as_is'
    # preprocessors
    if key == ip + 'embeddings.weight':
        return 'params', 'embed', 'embeddings', 'as_is'
    if key == ip + 'position_embeddings.weight':
        return 'params', 'trainable_position_encoding', 'pos_embs', 'as_is'
    m = re.fullmatch(r'perceiver\.input_preprocessor\.convnet_1x1\.(weight|bias)', key)
    if m:
        return 'params', 'image_preprocessor/~/conv2_d', {'weight': 'w', 'bias': 'b'}[m.group(1)], 'conv' if m.group(1) == 'weight' else 'as_is'
    if key == ip + 'position_embeddings.position_embeddings':
        return 'params', 'image_preprocessor/~_build_network_inputs/trainable_position_encoding', 'pos_embs', 'as_is'
    m = re.fullmatch(r'perceiver\.input_preprocessor\.positions_projection\.(weight|bias)', key)
    if m:
        return ('params', 'image_preprocessor/~_build_network_inputs/position_encoding_projector/linear') + linear('', m.group(1))[1:]
    ds = 'image_preprocessor/~/conv2_d_downsample/~'
    if key == ip + 'convnet.conv.weight':
        return 'params', f'{ds}/conv', 'w', 'conv'
    bn = {'weight': ('params', f'{ds}/batchnorm', 'scale'), 'bias': ('params', f'{ds}/batchnorm', 'offset'),
          'running_mean': ('state', f'{ds}/batchnorm/~/mean_ema', 'average'),
          'running_var': ('state', f'{ds}/batchnorm/~/var_ema', 'average')}
    m = re.fullmatch(r'perceiver\.input_preprocessor\.convnet\.batchnorm\.(\w+)', key)
    if m:
        if m.group(1) == 'num_batches_tracked':
            return None  # PyTorch's batch count; Haiku's EMA has its own counter (below)
        return bn[m.group(1)] + ('bn',)
    m = re.fullmatch(r'perceiver\.input_preprocessor\.conv_after_patches\.(weight|bias)', key)
    if m:
        return ('params', 'image_preprocessor/patches_linear') + linear('', m.group(1))[1:]
    m = re.fullmatch(r'perceiver\.input_preprocessor\.(padding|mask)\.(\w+)', key)
    if m:
        kind = 'padding' if m.group(1) == 'padding' else 'mask_token'
        return 'params', f'multimodal_preprocessor/{m.group(2)}_{kind}', 'pos_embs', 'as_is'
    # postprocessors
    if key == 'embedding_decoder.bias':
        return 'params', 'embedding_decoder', 'bias', 'as_is'
    m = re.fullmatch(r'perceiver\.output_postprocessor\.modalities\.(\w+)\.classifier\.(weight|bias)', key)
    if m:
        post = {'audio': 'audio_postprocessor', 'image': 'projection_postprocessor', 'label': 'classification_postprocessor'}[m.group(1)]
        return ('params', f'{post}/linear') + linear('', m.group(2))[1:]
    raise KeyError(f'{case}: no Haiku name for {key}')


def to_haiku(arr, layout):
    if layout == 'linear' and arr.ndim == 2:
        return arr.T  # [out, in] -> [in, out]
    if layout == 'conv':
        return arr.transpose(2, 3, 1, 0)  # OIHW -> HWIO
    if layout == 'bn':
        return arr.reshape(1, 1, 1, -1)  # Haiku keeps the reduced axes
    return arr


def dump(obj, released_style):
    """Pickle bytes. released_style: as numpy 1.x under Python 3.7 wrote the 2021
    checkpoints (protocol 3: GLOBAL opcodes naming numpy.core.multiarray); otherwise as
    today's numpy 2 / Python 3.8+ (protocol 4: frames, STACK_GLOBAL, numpy._core)."""
    if not released_style:
        return pickle.dumps(obj, protocol=4)
    raw = pickle.dumps(obj, protocol=3)
    # Protocol 3 names globals as text lines, so the module can be renamed in place.
    new = raw.replace(b'cnumpy._core.multiarray\n', b'cnumpy.core.multiarray\n')
    assert b'numpy._core' not in new
    return new


# case -> (file name, wrapped in {'params', 'state'}?) as the released checkpoints are:
# language_perceiver_io_bytes.pickle and optical_flow / video_autoencoding .pystate are
# bare params; the ImageNet .pystate files hold {'params', 'state'}.
CASES = {
    'mlm': ('mlm.pickle', False),
    'image_fourier': ('image_fourier.pystate', True),
    'image_learned': ('image_learned.pystate', True),
    'image_conv': ('image_conv.pystate', True),
    'optical_flow': ('optical_flow.pystate', False),
    'multimodal': ('multimodal.pystate', False),
}


def main():
    os.makedirs(OUT, exist_ok=True)
    for case, (fname, wrapped) in CASES.items():
        hf = read_safetensors(os.path.join(HF, case, 'model.safetensors'))
        coll = {'params': {}, 'state': {}}
        for key in sorted(hf):
            inv = inverse(key, case)
            if inv is None:
                continue
            c, mod, p, lay = inv
            bucket = coll[c].setdefault(mod, {})
            assert p not in bucket, f'{case}: {mod}/{p} given twice'
            bucket[p] = np.ascontiguousarray(to_haiku(hf[key], lay).astype(np.float32))
        if case == 'image_conv':
            # ExponentialMovingAverage also keeps its debiasing accumulator and step count.
            for ema in ('mean_ema', 'var_ema'):
                mod = f'image_preprocessor/~/conv2_d_downsample/~/batchnorm/~/{ema}'
                coll['state'][mod]['hidden'] = coll['state'][mod]['average'].copy()
                coll['state'][mod]['counter'] = np.array(1000, dtype=np.int32)
        ckpt = {'params': coll['params'], 'state': coll['state']} if wrapped else coll['params']
        assert wrapped or not coll['state'], f'{case}: state needs a wrapped checkpoint'
        tmp = os.path.join(OUT, fname + '.tmp')
        with open(tmp, 'wb') as f:
            f.write(dump(ckpt, released_style=(case == 'mlm')))
        os.replace(tmp, os.path.join(OUT, fname))
        for c in ('params', 'state'):
            flat = {f'{mod}/{p}': a for mod, ps in coll[c].items() for p, a in ps.items()}
            if flat:
                write_safetensors(os.path.join(OUT, f'{case}.{c}.safetensors'), flat)
        n = sum(len(ps) for ps in coll['params'].values())
        print(f'{case}: {fname} ({n} params, {sum(len(ps) for ps in coll["state"].values())} state)')


if __name__ == '__main__':
    sys.exit(main())
