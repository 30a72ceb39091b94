"""Runs PyTorch's cuDNN scaled-dot-product attention (forward and backward) once with cuDNN's API
log switched on, so the backend descriptors PyTorch's cuDNN frontend builds (operations, tensor
dimensions, strides, data types, attributes) can be read as facts for our own backend-API graph.

  CUDNN_LOGLEVEL_DBG=3 CUDNN_LOGDEST_DBG=$OUT/cudnn.log python3 bench/reference/cudnn_sdpa_log.py
"""
import sys
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

b, h, l, d = (int(x) for x in (sys.argv[1:5] if len(sys.argv) >= 5 else (2, 16, 1024, 72)))
torch.manual_seed(0)
# [B, L, H, D] storage viewed as [B, H, L, D]: the layout our model's split-head views have.
q, k, v = (torch.randn(b, l, h, d, device='cuda', dtype=torch.bfloat16).transpose(1, 2).requires_grad_() for _ in range(3))
with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
    o = F.scaled_dot_product_attention(q, k, v)
    o.backward(torch.randn_like(o))
torch.cuda.synchronize()
print('cudnn', torch.backends.cudnn.version(), 'q strides', q.stride(), 'o strides', o.stride(), 'dq strides', q.grad.stride())
try:
    import cudnn  # the frontend's Python bindings, if installed
    print('cudnn frontend python', cudnn.backend_version())
except Exception as e:  # noqa: BLE001
    print('no cudnn frontend python module:', e)
