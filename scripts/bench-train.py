# The PyTorch side of scripts/bench-train.ts: the 'mnist' preset's miniature Perceiver
# IO written in plain PyTorch with the same shapes (conv 7x7/2 SAME + BN + ReLU +
# max-pool 3x3/2 SAME -> 7x7x32 tokens + 34 Fourier features; 32 latents of 128; a
# one-head cross-attention; 4 self-attention layers of 4 heads; a one-query decoder),
# timed over AdamW training steps. Prints one JSON line: {"ms_per_step": ..., ...}.
import json, math, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

batch = int(sys.argv[1]) if len(sys.argv) > 1 else 64
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 20
threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
torch.set_num_threads(threads)
torch.manual_seed(0)


class Attention(nn.Module):
    def __init__(self, q_dim, kv_dim, qk, v, heads, out_dim, cross):
        super().__init__()
        self.ln1 = nn.LayerNorm(q_dim)
        self.ln2 = nn.LayerNorm(kv_dim) if cross else None
        self.q, self.k, self.v = nn.Linear(q_dim, qk), nn.Linear(kv_dim, qk), nn.Linear(kv_dim, v)
        self.o = nn.Linear(v, out_dim)
        self.heads = heads

    def forward(self, x, kv=None):
        q_in = self.ln1(x)
        kv_in = self.ln2(kv) if self.ln2 is not None else q_in
        B, N, _ = q_in.shape
        M = kv_in.shape[1]
        h = self.heads
        q = self.q(q_in).view(B, N, h, -1).transpose(1, 2)
        k = self.k(kv_in).view(B, M, h, -1).transpose(1, 2)
        v = self.v(kv_in).view(B, M, h, -1).transpose(1, 2)
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1) @ v
        return self.o(a.transpose(1, 2).reshape(B, N, -1))


class Layer(nn.Module):
    def __init__(self, q_dim, kv_dim, qk, v, heads, cross):
        super().__init__()
        self.att = Attention(q_dim, kv_dim, qk, v, heads, q_dim, cross)
        self.ln = nn.LayerNorm(q_dim)
        self.mlp = nn.Sequential(nn.Linear(q_dim, q_dim), nn.GELU(), nn.Linear(q_dim, q_dim))

    def forward(self, x, kv=None):
        a = self.att(x, kv) + x
        return self.mlp(self.ln(a)) + a


def fourier(n, bands):
    lin = torch.linspace(-1, 1, n)
    pos = torch.stack(torch.meshgrid(lin, lin, indexing='ij'), -1).reshape(-1, 2)
    freqs = torch.linspace(1.0, n / 2, bands)
    f = (pos[:, :, None] * freqs[None, None, :]).reshape(-1, 2 * bands) * math.pi
    return torch.cat([pos, torch.sin(f), torch.cos(f)], -1)


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 32, 7, 2, bias=False)
        self.bn = nn.BatchNorm2d(32)
        self.register_buffer('pos', fourier(7, 8))
        self.latents = nn.Parameter(torch.randn(32, 128) * 0.1)
        self.cross = Layer(128, 66, 66, 66, 1, True)
        self.layers = nn.ModuleList([Layer(128, 128, 128, 128, 4, False) for _ in range(4)])
        self.query = nn.Parameter(torch.randn(1, 128) * 0.1)
        self.dec = Layer(128, 128, 128, 128, 1, True)
        self.final = nn.Linear(128, 10)

    def forward(self, x):
        x = (x - 0.1307) / 0.3081
        x = F.relu(self.bn(self.conv(F.pad(x, (2, 3, 2, 3)))))
        x = F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=-math.inf), 3, 2)
        B = x.shape[0]
        tokens = torch.cat([x.flatten(2).transpose(1, 2), self.pos.expand(B, -1, -1)], -1)
        z = self.cross(self.latents.expand(B, -1, -1), tokens)
        for layer in self.layers:
            z = layer(z)
        return self.final(self.dec(self.query.expand(B, -1, -1), z)[:, 0])


model = Model().train()
opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
x = torch.rand(batch, 1, 28, 28)
y = torch.randint(0, 10, (batch,))
times = []
for i in range(steps + 3):
    t0 = time.perf_counter()
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    if i >= 3:
        times.append(time.perf_counter() - t0)
times.sort()
print(json.dumps({'ms_per_step': 1000 * times[len(times) // 2], 'params': sum(p.numel() for p in model.parameters()), 'torch': torch.__version__, 'threads': threads}))
