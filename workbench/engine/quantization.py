"""int8 decoding on the CPU: torch's dynamic quantization of the linear and recurrent layers.

Every nn.Linear, GRU, LSTM and recurrent cell keeps its weights as int8 (a scale per output row) and
quantizes its input on the fly for each product (fbgemm / oneDNN kernels). Embeddings, attention
arithmetic, softmax and the beam scores stay fp32, and so does a linear layer with one output (the
additive attention's energy vector: quantizing its input would cost more than its weight saves).
A decoder step then reads about a quarter of the weight bytes of fp32, which is what bounds decoding
a few sentences at a time (docs/benchmarks.md). Scores differ slightly from fp32, so it is opt-in:
`decoding.precision = "int8"` or `--precision int8`.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from torch import nn

from workbench.engine.model import Seq2Seq
from workbench.engine.recipe import RecipeError

INT8_LAYERS = {nn.Linear, nn.GRU, nn.LSTM, nn.GRUCell, nn.LSTMCell, nn.RNNCell}  # nn.RNN stays fp32


def quantize_int8(model: Seq2Seq) -> Seq2Seq:
    """The model (on the CPU, in eval mode) with int8 weights in its linear and recurrent layers, in place."""
    try:
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    except ImportError as exc:  # torch has announced that it will move this API to torchao
        raise RecipeError(
            f"decoding precision int8 needs torch.ao.quantization, which torch {torch.__version__} "
            "does not have; use fp32 or bf16"
        ) from exc
    with warnings.catch_warnings():
        # torch marks torch.ao.quantization and its quantized tensors deprecated in favour of torchao,
        # whose CPU path measured slower than fp32 here (docs/benchmarks.md); this one makes int8 fast.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize", category=UserWarning)
        spec = {
            name: per_channel_dynamic_qconfig
            for name, module in model.named_modules()
            if type(module) in INT8_LAYERS
            and not (isinstance(module, nn.Linear) and module.out_features == 1)
        }
        return quantize_dynamic(model.eval(), spec, dtype=torch.qint8, inplace=True)


def int8_forward(layer: nn.Module) -> Callable[..., Any] | None:
    """The forward of a layer quantized here (Linear, GRUCell, LSTMCell), its packed weights looked up once;
    None for any other layer. The search step calls it at every step (fast_paths/search_step.py): the same
    kernel and arguments as the module's own forward, without a module call."""
    if not type(layer).__module__.startswith("torch.ao.nn.quantized.dynamic"):
        return None
    kind = type(layer).__name__
    try:  # the modules' own attributes: a torch that renames them gets the module call instead
        if kind == "Linear" and layer._packed_params.dtype == torch.qint8:
            reduce_range = layer.version is not None and layer.version >= 4  # as Linear.forward decides
            return partial(
                torch.ops.quantized.linear_dynamic, W_prepack=layer._packed_params._packed_params,
                reduce_range=reduce_range,
            )  # fmt: skip
        if kind in ("GRUCell", "LSTMCell"):
            name = f"quantized_{kind.removesuffix('Cell').lower()}_cell_dynamic"
            cell = getattr(torch.ops.quantized, name)
            weights = (layer._packed_weight_ih, layer._packed_weight_hh, layer.bias_ih, layer.bias_hh)
            return lambda x, state: cell(x, state, *weights)
    except AttributeError:
        return None
    return None
