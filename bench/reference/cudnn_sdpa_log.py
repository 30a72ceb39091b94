"""Runs PyTorch's cuDNN scaled-dot-product attention (forward and backward) once with cuDNN's API
log switched on, so the backend descriptors PyTorch's cuDNN frontend builds (operations, tensor
dimensions, strides, data types, attributes) can be read as facts for our own backend-API graph.

  CUDNN_LOGLEVEL_DBG=3 CUDNN_LOGDEST_DBG=$OUT/cudnn.log python3 bench/reference/cudnn_sdpa_log.py

Positional B H L D (default 2 16 1024 72). --lk N gives the keys their own length (cross-attention);
--masked passes a boolean key-padding mask attn_mask [B, 1, 1, Lk] (the first keys of each row valid,
a caption-like prefix: row i keeps Lk - 8 i keys, at least 1), which PyTorch hands cuDNN as a bias:
the graphs our masked route (src/backends/cuda/cudnn-attention/spec.ts) mirrors.

  CUDNN_LOGLEVEL_DBG=3 CUDNN_LOGDEST_DBG=$OUT/cudnn-masked.log CUDNN_FRONTEND_LOG_INFO=1 \\
    CUDNN_FRONTEND_LOG_FILE=$OUT/fe-masked.log python3 bench/reference/cudnn_sdpa_log.py 2 16 1024 72 --lk 120 --masked
"""
import argparse
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

parser = argparse.ArgumentParser()
parser.add_argument('sizes', nargs='*', type=int, help='B H L D')
parser.add_argument('--lk', type=int, default=None, help='key length (default: L)')
parser.add_argument('--masked', action='store_true', help='boolean key-padding attn_mask [B, 1, 1, Lk]')
args = parser.parse_args()
b, h, l, d = args.sizes if len(args.sizes) == 4 else (2, 16, 1024, 72)
lk = args.lk or l
torch.manual_seed(0)


def heads(length):
    # [B, L, H, D] storage viewed as [B, H, L, D]: the layout our model's split-head views have.
    return torch.randn(b, length, h, d, device='cuda', dtype=torch.bfloat16).transpose(1, 2).requires_grad_()


q, k, v = heads(l), heads(lk), heads(lk)
mask = None
if args.masked:
    keep = torch.arange(lk, device='cuda')[None, :] < torch.tensor([max(1, lk - 8 * i) for i in range(b)], device='cuda')[:, None]
    mask = keep[:, None, None, :]
with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    o.backward(torch.randn_like(o))
torch.cuda.synchronize()
print('cudnn', torch.backends.cudnn.version(), 'q strides', q.stride(), 'k strides', k.stride(), 'o strides', o.stride(),
      'dq strides', q.grad.stride(), 'mask', None if mask is None else (tuple(mask.shape), mask.dtype))
try:
    import cudnn  # the frontend's Python bindings, if installed
    print('cudnn frontend python', cudnn.backend_version())
except Exception as e:  # noqa: BLE001
    print('no cudnn frontend python module:', e)
