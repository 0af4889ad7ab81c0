#!/usr/bin/env python3
"""Writes the checkpoint fixtures under test/fixtures/checkpoints/.

Run with Debian's torch and numpy (apt-get install python3-torch python3-numpy):
    /usr/bin/python3 scripts/make-test-checkpoints.py

Every tensor comes from test/fixtures/hf/mlm/model.safetensors (parsed here by hand),
so the tests can check each record against the same tensor read by loadSafetensors.
Haiku and JAX are not needed: their classes only matter through the global names
and arguments their __reduce__ methods write (haiku FlatMap -> FlatMapping(dict),
jax.Array -> jax._src.array._reconstruct_array(fun, args, arr_state, aval_state)),
so small stand-in modules registered under those names produce byte-identical
pickle structure. The hostile files are assembled opcode by opcode.
"""
import collections
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import types
import zipfile
import zlib

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, 'test', 'fixtures', 'hf', 'mlm', 'model.safetensors')
OUT = os.path.join(ROOT, 'test', 'fixtures', 'checkpoints')
# What a hostile payload would create if it ever ran; the tests assert it never exists.
MARKER = '/tmp/perceiver-io-pickle-payload-ran'


def read_safetensors(path):
    with open(path, 'rb') as f:
        blob = f.read()
    (n,) = struct.unpack('<Q', blob[:8])
    header = json.loads(blob[8:8 + n])
    out = collections.OrderedDict()
    for name, e in header.items():
        if name == '__metadata__':
            continue
        assert e['dtype'] == 'F32', e
        b, end = e['data_offsets']
        raw = blob[8 + n + b:8 + n + end]
        out[name] = torch.from_numpy(np.frombuffer(raw, dtype='<f4').copy()).reshape(e['shape'])
    return out


def write(name, data):
    with open(os.path.join(OUT, name), 'wb') as f:
        f.write(data)


def torch_bytes(obj, legacy=False):
    buf = io.BytesIO()
    torch.save(obj, buf, _use_new_zipfile_serialization=not legacy)
    return buf.getvalue()


def subset(sd, prefixes):
    return collections.OrderedDict((k, v) for k, v in sd.items() if k.startswith(prefixes))


def with_metadata(sd):
    # A real state_dict carries _metadata, pickled as BUILD state on the OrderedDict.
    sd = collections.OrderedDict(sd)
    sd._metadata = collections.OrderedDict([('', {'version': 1})])
    return sd


def tied_example(sd):
    """Tied weights, views with offsets and strides, every dtype, nesting."""
    w = sd['perceiver.encoder.cross_attention.attention.self.query.weight']  # [32, 96]
    emb = sd['perceiver.input_preprocessor.position_embeddings.weight']  # [48, 64]
    small = emb[:3, :4].contiguous()
    inner = collections.OrderedDict()
    inner['query.weight'] = w
    inner['query_tied.weight'] = w  # the same tensor object: one storage, two names
    inner['query_t'] = w.t()  # non-contiguous view of the same storage
    inner['query_rows'] = w[4:6]  # storage offset
    inner['query_col'] = w[:, 5]  # stride 96
    inner['query_every_other'] = w[::2, 1::3]
    inner['param'] = torch.nn.Parameter(emb[:2].clone())  # _rebuild_parameter
    inner['f16'] = small.half()
    inner['bf16'] = small.bfloat16()
    inner['f64'] = small.double()
    inner['i64'] = torch.arange(-3, 9, dtype=torch.int64).reshape(3, 4)
    inner['i32'] = torch.arange(-3, 9, dtype=torch.int32)
    inner['i16'] = torch.arange(-3, 9, dtype=torch.int16)
    inner['i8'] = torch.arange(-3, 9, dtype=torch.int8)
    inner['u8'] = torch.arange(0, 12, dtype=torch.uint8)
    inner['bool'] = torch.tensor([True, False, True])
    inner['scalar'] = torch.tensor(2.5)
    inner['empty'] = torch.zeros(0, 5)
    return {'model': {'encoder': inner, 'head': {'bias': sd['embedding_decoder.bias']}},
            'step': 7, 'config': {'lr': 0.001, 'name': 'tiny', 'dtype': torch.float32}}


def seed_for_torch2(sd):
    return collections.OrderedDict([('latents', sd['perceiver.embeddings.latents'])])


# ---- Haiku-style pickles ---------------------------------------------------------------

def install_haiku_and_jax_stand_ins():
    """Modules named like haiku's and jax's, whose classes pickle exactly as theirs do."""
    def module(name):
        m = types.ModuleType(name)
        sys.modules[name] = m
        return m
    for n in ('haiku', 'haiku._src', 'jax', 'jax._src'):
        module(n)
    ds = module('haiku._src.data_structures')
    arr = module('jax._src.array')

    class FlatMapping(dict):
        def __reduce__(self):
            return FlatMapping, (dict(self),)
    FlatMapping.__module__ = 'haiku._src.data_structures'
    FlatMapping.__qualname__ = 'FlatMapping'
    ds.FlatMapping = FlatMapping

    def _reconstruct_array(fun, args, arr_state, aval_state):
        raise AssertionError('only pickled here, never loaded')
    _reconstruct_array.__module__ = 'jax._src.array'
    _reconstruct_array.__qualname__ = '_reconstruct_array'
    arr._reconstruct_array = _reconstruct_array

    class JaxArray:
        def __init__(self, value):
            self._value = value

        def __reduce__(self):
            fun, args, arr_state = self._value.__reduce__()
            return _reconstruct_array, (fun, args, arr_state, {'weak_type': False})
    return FlatMapping, JaxArray


def haiku_params(sd):
    """A few modules in Haiku's layout: Linear w [in, out], LayerNorm scale/offset."""
    def t(name):
        return sd[name].numpy()
    p = collections.OrderedDict()
    enc = 'perceiver_encoder/~/cross_attention'
    p[f'{enc}/attention/linear'] = {
        'w': np.ascontiguousarray(t('perceiver.encoder.cross_attention.attention.self.query.weight').T),
        'b': t('perceiver.encoder.cross_attention.attention.self.query.bias'),
    }
    p[f'{enc}/layer_norm'] = {
        'scale': t('perceiver.encoder.cross_attention.attention.self.layernorm1.weight'),
        'offset': t('perceiver.encoder.cross_attention.attention.self.layernorm1.bias'),
    }
    p['embed'] = {'embeddings': t('perceiver.input_preprocessor.embeddings.weight')}
    p['trainable_position_encoding'] = {
        'pos_embs': t('perceiver.input_preprocessor.position_embeddings.weight'),
    }
    # A Fortran-ordered array: numpy pickles its bytes column-major with the flag set.
    p['fortran'] = {'w': np.asfortranarray(t('perceiver.encoder.cross_attention.attention.self.key.weight'))}
    p['dtypes'] = {
        'f16': t('perceiver.embeddings.latents')[:2, :5].astype(np.float16),
        'f64': t('perceiver.embeddings.latents')[:2, :5].astype(np.float64),
        'i32': np.arange(-4, 8, dtype=np.int32).reshape(3, 4),
        'i64': np.arange(-4, 8, dtype=np.int64),
        'u8': np.arange(12, dtype=np.uint8),
        'bool': np.array([True, False, True]),
        'scalar': np.array(1.5, dtype=np.float32),
    }
    return p


def haiku_state(sd):
    lat = sd['perceiver.embeddings.latents'].numpy()
    return {
        'batchnorm/~/mean_ema': {'average': lat[0].copy(), 'counter': np.array(3, dtype=np.int32),
                                 'hidden': lat[1].copy()},
        'batchnorm/~/var_ema': {'average': lat[2].copy(), 'counter': np.array(3, dtype=np.int32),
                                'hidden': lat[3].copy()},
    }


# ---- hostile files ---------------------------------------------------------------------

def hostile_pickles():
    cmd = f'touch {MARKER}'.encode()
    def s(b):  # SHORT_BINUNICODE
        return b'\x8c' + bytes([len(b)]) + b
    return {
        # The classic: a class whose __reduce__ returns (os.system, (cmd,)); protocol 2.
        'evil_reduce.pickle': b'\x80\x02cposix\nsystem\nq\x00X' + struct.pack('<I', len(cmd)) + cmd
                              + b'q\x01\x85q\x02Rq\x03.',
        # Protocol 4 spells the global with STACK_GLOBAL.
        'evil_stack_global.pickle': b'\x80\x04' + s(b'os') + s(b'system') + b'\x93' + s(cmd) + b'\x85R.',
        # Protocol 0 INST: the class and its arguments in one opcode.
        'evil_inst.pickle': b'(S\'' + cmd + b'\'\nios\nsystem\n.',
        # Protocol 1 OBJ: class then arguments after a MARK.
        'evil_obj.pickle': b'(cos\nsystem\nX' + struct.pack('<I', len(cmd)) + cmd + b'o.',
        # builtins.eval of an expression.
        'evil_eval.pickle': b'\x80\x04' + s(b'builtins') + s(b'eval') + b'\x93'
                            + s(f"__import__('os').system('touch {MARKER}')".encode()) + b'\x85R.',
        # Hidden inside an otherwise ordinary Haiku params dict.
        'evil_nested.pickle': b'\x80\x02}q\x00X\x06\x00\x00\x00linearq\x01}q\x02X\x01\x00\x00\x00w'
                              b'cposix\nsystem\nX' + struct.pack('<I', len(cmd)) + cmd + b'\x85Rss.',
    }


def zip_with(entries, method=zipfile.ZIP_STORED):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, 'w', compression=method) as z:
        for name, data in entries:
            # A fixed timestamp keeps the committed fixtures byte-stable across runs.
            z.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data, compress_type=method)
    return bytearray(buf.getvalue())


def patch_sizes(blob, name, uncompressed):
    """Rewrites an entry's declared uncompressed size in both its local and central headers."""
    enc = name.encode()
    i = blob.find(b'PK\x03\x04')
    while i >= 0:
        n, = struct.unpack_from('<H', blob, i + 26)
        if bytes(blob[i + 30:i + 30 + n]) == enc:
            struct.pack_into('<I', blob, i + 22, uncompressed)
        i = blob.find(b'PK\x03\x04', i + 4)
    i = blob.find(b'PK\x01\x02')
    while i >= 0:
        n, = struct.unpack_from('<H', blob, i + 28)
        if bytes(blob[i + 46:i + 46 + n]) == enc:
            struct.pack_into('<I', blob, i + 24, uncompressed)
        i = blob.find(b'PK\x01\x02', i + 4)
    return bytes(blob)


NUMPY2_SNIPPET = '''
import pickle, sys, numpy as np
assert int(np.__version__.split('.')[0]) >= 2, np.__version__
tree = pickle.load(sys.stdin.buffer)
tree['scalars'] = {'s': np.float32(1.5), 'i': np.int64(-7)}
out = sys.argv[1]
for proto in (4, 5):
    with open(f'{out}/haiku_numpy2_proto{proto}.pickle', 'wb') as f:
        pickle.dump(tree, f, protocol=proto)
'''


def write_numpy2(tree):
    """The same arrays pickled by numpy 2, which names its modules numpy._core.

    Needs a Python with numpy >= 2 ($NUMPY2_PYTHON, default python3 on PATH); without
    one the committed files are kept."""
    exe = os.environ.get('NUMPY2_PYTHON', 'python3')
    try:
        subprocess.run([exe, '-c', NUMPY2_SNIPPET, OUT], input=pickle.dumps(tree, protocol=4), check=True)
    except (OSError, subprocess.CalledProcessError) as err:
        print(f'skipped the numpy 2 pickles ({exe}: {err})', file=sys.stderr)


def main():
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    sd = read_safetensors(SRC)

    write('pytorch_model.bin', torch_bytes(with_metadata(sd)))
    legacy = subset(sd, ('perceiver.encoder.cross_attention.', 'perceiver.embeddings.', 'embedding_decoder.'))
    write('pytorch_model_legacy.bin', torch_bytes(with_metadata(legacy), legacy=True))
    tied = tied_example(sd)
    write('tied_strided.bin', torch_bytes(tied))
    write('tied_strided_legacy.bin', torch_bytes(tied, legacy=True))
    # The same archive re-zipped with DEFLATE, as an archiving tool might leave it.
    with zipfile.ZipFile(io.BytesIO(torch_bytes(tied))) as z:
        write('tied_strided_deflated.bin',
              bytes(zip_with([(i.filename, z.read(i)) for i in z.infolist()], zipfile.ZIP_DEFLATED)))

    FlatMapping, JaxArray = install_haiku_and_jax_stand_ins()
    params = haiku_params(sd)
    write('haiku_params.pickle', pickle.dumps({k: dict(v) for k, v in params.items()}, protocol=4))
    small = {k: params[k] for k in (f'perceiver_encoder/~/cross_attention/layer_norm', 'dtypes', 'fortran')}
    # Protocol 2 pickles bytes through _codecs.encode(str, 'latin1'); protocol 5 through
    # numpy's _frombuffer with an in-band buffer.
    write('haiku_proto2.pickle', pickle.dumps(small, protocol=2))
    write('haiku_proto5.pickle', pickle.dumps(small, protocol=5))
    write('haiku_flatmapping.pickle', pickle.dumps(
        FlatMapping({k: FlatMapping(v) for k, v in small.items()}), protocol=4))
    write('haiku_jax_arrays.pickle', pickle.dumps(
        {k: {n: JaxArray(a) for n, a in v.items()} for k, v in small.items()}, protocol=4))
    write_numpy2(small)
    write('haiku_model.pystate', pickle.dumps({'params': small, 'state': haiku_state(sd)}, protocol=4))
    # numpy.ndarray of Python objects has no raw bytes to point at.
    write('haiku_object_array.pickle', pickle.dumps({'m': {'w': np.array(['a', 1], dtype=object)}}, protocol=4))
    # A big-endian array: records are little-endian by contract.
    write('haiku_big_endian.pickle', pickle.dumps({'m': {'w': np.arange(4, dtype='>f4')}}, protocol=4))

    # torch >= 2.1 adds byteorder and .data/serialization_id records: the same archive
    # with them (little-endian), and with a big-endian byteorder the reader must refuse.
    with zipfile.ZipFile(io.BytesIO(torch_bytes(seed_for_torch2(sd)))) as z:
        entries = [(i.filename, z.read(i)) for i in z.infolist()]
    extra = [('archive/.data/serialization_id', b'0123456789012345678901234567890123456789')]
    write('torch2_layout.bin', bytes(zip_with(entries + extra + [('archive/byteorder', b'little')])))
    write('big_endian.bin', bytes(zip_with(entries + [('archive/byteorder', b'big')])))

    # Small seeds for the fuzz test: in a small file most mutations hit structure, not
    # tensor bytes. Every layout and pickle form the readers take, a few bytes each.
    a = sd['perceiver.embeddings.latents'][:2, :3].contiguous()
    seed = collections.OrderedDict([('a', a), ('a_t', a.t()), ('i', torch.arange(2)), ('h', a[0].bfloat16())])
    write('fuzz_seed.bin', torch_bytes({'state_dict': seed, 'epoch': 1}))
    write('fuzz_seed_legacy.bin', torch_bytes(seed, legacy=True))
    with zipfile.ZipFile(io.BytesIO(torch_bytes(seed))) as z:
        write('fuzz_seed_deflated.bin',
              bytes(zip_with([(i.filename, z.read(i)) for i in z.infolist()], zipfile.ZIP_DEFLATED)))
    tiny = {'m/~/linear': {'w': a.numpy(), 'b': np.asfortranarray(a.numpy())},
            'bn': {'counter': np.array(2, dtype=np.int32), 'f16': a.numpy()[0].astype(np.float16)}}
    write('fuzz_seed.pickle', pickle.dumps({'params': tiny, 'state': {'s': {'x': np.arange(3, dtype=np.int64)}}}, protocol=4))
    write('fuzz_seed_proto2.pickle', pickle.dumps(tiny, protocol=2))
    write('fuzz_seed_flatmapping.pickle', pickle.dumps(
        FlatMapping({k: FlatMapping({n: JaxArray(x) for n, x in v.items()}) for k, v in tiny.items()}), protocol=5))

    # Plain Python values under every protocol, for the unpickler's own specification.
    shared = [1, 2]
    plain = {'ints': [0, 1, -1, 255, 256, 65535, 65536, -2**31, 2**31 - 1, 2**31, 2**53, -2**70, 2**70],
             'floats': [0.5, -1e300, float('inf')], 'consts': [None, True, False],
             'str': 'h\u00e9llo \u2603 \\ \'q\' "\n"', 'bytes': b'\x00\xff\n\\', 'tuple': (1, (2, 3), ()),
             'set': {7}, 'frozenset': frozenset({8}), 'nested': {'x': {'y': [1]}}, 'shared': (shared, shared),
             'odict': collections.OrderedDict([('b', 1), ('a', 2)])}
    for proto in range(6):
        write(f'plain_proto{proto}.pickle', pickle.dumps(plain, protocol=proto))

    for name, data in hostile_pickles().items():
        write(name, data)
    write('evil_torch.bin', bytes(zip_with([
        ('archive/data.pkl', hostile_pickles()['evil_reduce.pickle']), ('archive/version', b'3\n')])))

    # Zip bombs: data.pkl inflates to 16 MiB of zeros. One declares 100 bytes (a lie the
    # reader catches by capping output at the declared size); one declares 3 GiB (over
    # the reader's hard cap, refused before inflating).
    zeros = b'\0' * (16 << 20)
    bomb = zip_with([('archive/data.pkl', zeros), ('archive/version', b'3\n')], zipfile.ZIP_DEFLATED)
    write('zip_bomb.bin', patch_sizes(bytearray(bomb), 'archive/data.pkl', 100))
    write('zip_bomb_declared.bin', patch_sizes(bytearray(bomb), 'archive/data.pkl', 3 << 30))

    total = 0
    for f in sorted(os.listdir(OUT)):
        size = os.path.getsize(os.path.join(OUT, f))
        total += size
        print(f'{size:>9}  {f}')
    print(f'{total:>9}  total')


if __name__ == '__main__':
    main()
