"""Graph rewrites that make lvbert's int8 ONNX graph fast in onnxruntime on CPU.

``onnxruntime`` runs the QDQ graph that ``quantize_static`` writes well but not at its best. Each
rewrite below keeps the arithmetic (the same values up to floating-point rounding) with fewer
passes over memory; ``benchmarks/bench_quantize.py`` measures them (``docs/benchmarks.md``):

- **Residual sums.** onnxruntime fuses every ``Add -> LayerNormalization`` pair into its
  ``SkipLayerNormalization`` kernel, which on CPU runs 7-10x slower than the two ops it replaces
  (onnxruntime 1.32, fp32; e.g. 1.33 ms against 0.20 ms at [8, 128, 256]). Writing the residual
  connection as ``Sum`` keeps the two fast ops: the fusion only matches ``Add``.
- **Gather, then dequantize.** The int8 embedding tables were dequantized whole on every call
  (30,522 rows) before the lookup; with a per-tensor scale the lookup commutes with the
  dequantization, so the lookup now reads the int8 table and only the rows it picks are
  dequantized.
- **Integer matmuls with their bias.** ``QuantizeLinear -> DequantizeLinear -> MatMul`` with an
  int8 weight, and the ``Add`` of the layer's bias after it, become one
  ``com.microsoft.MatMulIntegerToFloat`` (int8 x int8 -> int32, scaled to fp32, bias added in
  the same pass). onnxruntime builds that node itself but leaves the bias ``Add`` out.

:func:`optimize_for_onnxruntime` applies them all and returns how many of each it made.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

MS_DOMAIN = "com.microsoft"


class _Graph:
    """Producer / consumer maps of an ONNX graph (rebuilt after each rewrite)."""

    def __init__(self, graph):
        self.graph = graph
        self.inits = {i.name: i for i in graph.initializer}
        self.producer = {o: n for n in graph.node for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in graph.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self.outputs = {o.name for o in graph.output}

    def only_consumer(self, name: str):
        users = self.consumers.get(name, [])
        return users[0] if len(users) == 1 and name not in self.outputs else None

    def array(self, name: str):
        from onnx import numpy_helper

        return numpy_helper.to_array(self.inits[name]) if name in self.inits else None


def _residual_sums(graph) -> int:
    g = _Graph(graph)
    n_done = 0
    for node in graph.node:
        if node.op_type != "Add" or node.domain not in ("", "ai.onnx") or any(i in g.inits for i in node.input):
            continue
        user = g.only_consumer(node.output[0])
        if user is not None and user.op_type == "LayerNormalization" and user.input[0] == node.output[0]:
            node.op_type = "Sum"
            n_done += 1
    return n_done


def _scalar(g: _Graph, name: str) -> bool:
    a = g.array(name)
    return a is not None and a.size == 1


def _same_values(g: _Graph, names, others) -> bool:
    arrays = [g.array(n) for n in names], [g.array(n) for n in others]
    return len(names) == len(others) and all(
        x is not None and y is not None and x.dtype == y.dtype and np.array_equal(x, y) for x, y in zip(*arrays)
    )


def _gathers_then_dequantize(graph) -> int:
    from onnx import helper

    g = _Graph(graph)
    n_done = 0
    for node in list(graph.node):
        if node.op_type != "Gather":
            continue
        dq = g.producer.get(node.input[0])
        if dq is None or dq.op_type != "DequantizeLinear" or dq.input[0] not in g.inits:
            continue
        if not all(_scalar(g, i) for i in dq.input[1:]):  # per-tensor scale and zero point only
            continue
        if any(u.op_type != "Gather" or u.input[0] != dq.output[0] for u in g.consumers[dq.output[0]]):
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        at = list(graph.node).index(node)
        requant = g.only_consumer(node.output[0])
        if requant is not None and requant.op_type == "QuantizeLinear" and _same_values(g, requant.input[1:], dq.input[1:]):
            # quantize_static re-quantizes the rows with the table's own scale: the int8 rows as they are
            graph.node.remove(requant)
            new = [helper.make_node("Gather", [dq.input[0], node.input[1]], [requant.output[0]], name=node.name, **attrs)]
        else:
            picked = f"{node.output[0]}__int8"
            new = [helper.make_node("Gather", [dq.input[0], node.input[1]], [picked], name=node.name, **attrs),
                   helper.make_node("DequantizeLinear", [picked, *dq.input[1:]], [node.output[0]],
                                    name=f"{node.output[0]}__dequantize")]  # fmt: skip
        graph.node.remove(node)
        for n in reversed(new):
            graph.node.insert(at, n)
        n_done += 1
    return n_done


def _integer_matmuls(graph) -> int:
    from onnx import helper, numpy_helper

    g = _Graph(graph)
    n_done, made = 0, set()
    for node in list(graph.node):
        if node.op_type != "MatMul":
            continue
        a_dq, w_dq = g.producer.get(node.input[0]), g.producer.get(node.input[1])
        if a_dq is None or w_dq is None or a_dq.op_type != "DequantizeLinear" or w_dq.op_type != "DequantizeLinear":
            continue
        a_q = g.producer.get(a_dq.input[0])
        if a_q is None or a_q.op_type != "QuantizeLinear" or g.only_consumer(a_dq.output[0]) is not node:
            continue
        w = g.array(w_dq.input[0])
        if w is None or w.ndim != 2 or w.dtype != np.int8 or len(a_dq.input) < 3 or len(w_dq.input) < 3:
            continue
        if not (_scalar(g, a_dq.input[1]) and _scalar(g, w_dq.input[1])):
            continue
        a_zp = g.array(a_dq.input[2])
        if a_zp is None or a_zp.dtype not in (np.int8, np.uint8):
            continue
        # x86's fast int8 kernels (VNNI's vpdpbusd) multiply uint8 by int8: an int8 activation
        # becomes uint8 with its zero point moved up by 128 (the same values, exactly)
        a_u8, zp_name = a_dq.input[0], a_dq.input[2]
        if a_zp.dtype == np.int8:
            a_u8, zp_name = f"{a_dq.input[0]}__u8", f"{a_dq.input[0]}__zero_point_u8"  # unique: tensor names
            if a_u8 not in made:  # one uint8 copy per quantized tensor, however many layers read it
                made.add(a_u8)
                graph.initializer.append(numpy_helper.from_array(
                    (a_zp.astype(np.int16) + 128).astype(np.uint8).reshape(a_zp.shape), zp_name))  # fmt: skip
                requant = helper.make_node("QuantizeLinear", [a_q.input[0], a_q.input[1], zp_name], [a_u8],
                                           name=f"{a_u8}__quantize")  # fmt: skip
                graph.node.insert(list(graph.node).index(a_q), requant)
        inputs = [a_u8, w_dq.input[0], a_dq.input[1], w_dq.input[1], zp_name, w_dq.input[2]]
        out, drop = node.output[0], [node]
        add = g.only_consumer(node.output[0])
        if add is not None and add.op_type == "Add":
            other = add.input[1] if add.input[0] == node.output[0] else add.input[0]
            bias = g.array(other)
            if bias is not None and bias.ndim == 1 and bias.shape[0] == w.shape[1] and bias.dtype == np.float32:
                inputs.append(other)
                out, drop = add.output[0], [node, add]
        fused = helper.make_node("MatMulIntegerToFloat", inputs, [out], name=f"{out}__integer", domain=MS_DOMAIN)
        at = list(graph.node).index(node)
        for d in drop:
            graph.node.remove(d)
        graph.node.insert(at, fused)
        n_done += 1
    return n_done


def _drop_dead_nodes(graph) -> int:
    n_dropped = 0
    while True:
        needed = {o.name for o in graph.output}
        for n in graph.node:
            needed.update(n.input)
        dead = [n for n in graph.node if not any(o in needed for o in n.output)]
        if not dead:
            break
        for n in dead:
            graph.node.remove(n)
        n_dropped += len(dead)
    used = {i for n in graph.node for i in n.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)
    return n_dropped


def optimize_for_onnxruntime(model, portable: bool = False) -> dict:
    """Apply the rewrites above to ``model`` (an ``onnx.ModelProto``, edited in place); returns
    the count of each rewrite. ``portable``: only the rewrites that keep standard ONNX ops (not
    the integer matmuls, an onnxruntime operator)."""
    from onnx import helper

    graph = model.graph
    counts = Counter()
    counts["residual_sums"] = _residual_sums(graph)
    counts["gathers_then_dequantize"] = _gathers_then_dequantize(graph)
    counts["integer_matmuls"] = 0 if portable else _integer_matmuls(graph)
    if counts["integer_matmuls"] and not any(o.domain == MS_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    _drop_dead_nodes(graph)
    return dict(counts)
