"""The block-wise distilled supernet of NAS-BERT (Xu et al. 2021) on LV-BERT's sub-layers (torch).

The teacher (an lvbert MLM model) is cut into ``num_blocks`` blocks of its slots. Student block n
reads the teacher's output of block n-1 (block 0 reads its embeddings' output), maps it to the
candidate's width (a learnable input adapter per width), runs the candidate's slots and maps back
(an output adapter per width); it learns to give the teacher's block-n output (mean squared error
over real tokens). One :class:`NasBlock` holds every op at every width of every slot of a block,
so blocks train independently (separate runs). :func:`extract` chains one trained candidate per
block into a plain ``LvBertForMaskedLM``: the teacher's embeddings and MLM head, and between
blocks the output adapter of one composed with the input adapter of the next (one ``P`` slot).
"""

from __future__ import annotations

import torch
from torch import nn

from lvbert.errors import LvBertError
from lvbert.modeling_lvbert import LvBertConfig, LvBertForMaskedLM, LvBertPreTrainedModel, attention_bias, make_sublayer
from lvbert.nas.space import Block, NasSpace


def teacher_boundaries(num_layers: int, num_blocks: int) -> list[int]:
    """Indices into the teacher's hidden states (0 = embeddings' output) at which its blocks end:
    ``[0, b_1, ..., b_N = num_layers]``, as even as the layer count allows."""
    if num_layers < num_blocks:
        raise LvBertError(f"the teacher has {num_layers} layer(s), fewer than the {num_blocks} blocks of the NAS space; "
                          f"give a deeper teacher or fewer blocks (--num-blocks)")  # fmt: skip
    return [round(n * num_layers / num_blocks) for n in range(num_blocks + 1)]


def sublayer_config(teacher_config: LvBertConfig, dropout: float | None = None) -> LvBertConfig:
    """The config the student sub-layers are built from (activation, LayerNorm eps, dropout)."""
    d = teacher_config.hidden_dropout_prob if dropout is None else dropout
    return LvBertConfig(arch="F", hidden_size=teacher_config.hidden_size, num_attention_heads=1, conv_heads=1,
                        hidden_act=teacher_config.hidden_act, layer_norm_eps=teacher_config.layer_norm_eps,
                        hidden_dropout_prob=d, attention_probs_dropout_prob=d,
                        initializer_range=teacher_config.initializer_range, conv_mask_padding=True)  # fmt: skip


def _init_weights(module: nn.Module, config: LvBertConfig) -> None:
    """LV-BERT's initialisation (truncated normal 0.02, the convolution's own) on every submodule."""

    class _Holder:
        pass

    holder = _Holder()
    holder.config = config
    for m in module.modules():
        LvBertPreTrainedModel._init_weights(holder, m)


class NasBlock(nn.Module):
    """Every candidate of one block: slot j is a ModuleDict over ``w<width>_<op>``; adapters per width.

    ``forward(x, block, attention_mask)`` maps the teacher's hidden states [B, L, H_T] through the
    candidate ``block`` and back to [B, L, H_T]."""

    def __init__(self, space: NasSpace, teacher_width: int, config: LvBertConfig):
        super().__init__()
        self.space = space
        self.inputs = nn.ModuleDict({f"w{w}": nn.Linear(teacher_width, w) for w in space.widths})
        self.outputs = nn.ModuleDict({f"w{w}": nn.Linear(w, teacher_width) for w in space.widths})
        self.slots = nn.ModuleList(
            nn.ModuleDict({f"w{w}_{t}": make_sublayer(space.op(t, w), config, w) for w in space.widths for t in space.op_tokens})
            for _ in range(space.slots_per_block)
        )
        _init_weights(self, config)

    def path(self, block: Block) -> list[nn.Module]:
        """The sub-layers of a candidate, bottom first (identities left out)."""
        if block.width not in self.space.widths:
            raise LvBertError(f"width {block.width} of {block} is not in the space's widths {list(self.space.widths)}")
        return [self.slots[j][f"w{block.width}_{t}"] for j, t in enumerate(block.ops) if t != "I"]

    def forward(self, x, block: Block, attention_mask=None):
        attn_bias = attention_bias(attention_mask)
        if attn_bias is None:
            attention_mask = None
        w = f"w{block.width}"
        h = self.inputs[w](x)
        for layer in self.path(block):
            h = layer(h, attention_mask, attn_bias)
        return self.outputs[w](h)


def block_loss(student: torch.Tensor, target: torch.Tensor, attention_mask=None) -> torch.Tensor:
    """Mean squared error per element over real (non-padding) tokens, in float32."""
    err = (student.float() - target.float()).pow(2).mean(-1)  # [B, L]
    if attention_mask is None:
        return err.mean()
    w = attention_mask.to(err.dtype)
    return (err * w).sum() / w.sum().clamp(min=1.0)


@torch.no_grad()
def hidden_distance(model, teacher, valid: dict, batch_size: int = 64) -> float:
    """Mean squared distance over real tokens between the final hidden states of ``model`` and of
    ``teacher`` (both lvbert models of the teacher's output width) on the validation inputs: a whole
    model's score that needs no trained MLM head (a fine-tuned teacher's backbone)."""
    model.eval()
    keys = ("input_ids", "attention_mask", "token_type_ids")
    batch_all = {k: valid[k] for k in keys if valid.get(k) is not None}
    n = batch_all["input_ids"].shape[0]
    total, weight = 0.0, 0.0
    for start in range(0, n, batch_size):
        batch = {k: v[start : start + batch_size] for k, v in batch_all.items()}
        s = model.lvbert(**batch).last_hidden_state
        t = teacher.lvbert(**batch).last_hidden_state
        mask = batch.get("attention_mask")
        w = float(mask.sum()) if mask is not None else float(s.shape[0] * s.shape[1])
        total += float(block_loss(s, t, mask)) * w
        weight += w
    return total / max(weight, 1.0)


class TeacherBlocks:
    """The frozen teacher's hidden states at the block boundaries."""

    def __init__(self, teacher: LvBertForMaskedLM, num_blocks: int):
        self.model = teacher.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.num_layers = teacher.config.num_slots
        self.bounds = teacher_boundaries(self.num_layers, num_blocks)
        self.width = teacher.config.hidden_size
        if teacher.config.output_size != self.width or "P" in teacher.config.arch:
            raise LvBertError("the teacher changes width inside (P slots); give a constant-width teacher")

    @torch.no_grad()
    def outputs(self, batch: dict, upto: int | None = None) -> list[torch.Tensor]:
        """``[Y_0, ..., Y_N]`` (or up to block ``upto``): the embeddings' output, then each block's."""
        base = self.model.lvbert
        mask = batch.get("attention_mask")
        x = base.embeddings(batch["input_ids"], batch.get("token_type_ids"))
        attn_bias = attention_bias(mask)
        m = mask if attn_bias is not None else None
        out = [x]
        last = self.bounds[-1] if upto is None else self.bounds[upto]
        for i, slot in enumerate(base.encoder.slots[:last], 1):
            x = slot(x, m, attn_bias)
            if i in self.bounds:
                out.append(x)
        return out


def extract(space: NasSpace, blocks: list[Block], nas_blocks: list[NasBlock], teacher: LvBertForMaskedLM,
            dropout: float | None = None) -> LvBertForMaskedLM:  # fmt: skip
    """The plain model of one candidate per block with the trained weights: the teacher's embeddings
    and MLM head; ``P`` slots holding the composed adapters. Equal to :func:`chain_forward`."""
    tc = teacher.config
    size = space.student_size(tc.embedding_size, tc.vocab_size, tc.max_position_embeddings, tc.type_vocab_size)
    arch = space.arch(blocks)
    d = tc.hidden_dropout_prob if dropout is None else dropout
    cfg = LvBertConfig.from_size(size, arch=str(arch), hidden_act=tc.hidden_act, layer_norm_eps=tc.layer_norm_eps,
                                 pad_token_id=tc.pad_token_id, hidden_dropout_prob=d, attention_probs_dropout_prob=d)  # fmt: skip
    model = LvBertForMaskedLM(cfg).eval().to(next(teacher.parameters()).dtype)  # float64 in the parity test
    t = teacher.lvbert
    with torch.no_grad():
        emb = model.lvbert.embeddings
        for name in ("word_embeddings", "position_embeddings", "token_type_embeddings", "LayerNorm"):
            getattr(emb, name).load_state_dict(getattr(t.embeddings, name).state_dict())
        # what feeds block n: the teacher's E->H_T projection (block 0) or block n-1's output adapter
        prev = t.embeddings.project  # None when the teacher has E == H_T
        slots = iter(model.lvbert.encoder.slots)
        for n, (b, nb) in enumerate(zip(blocks, nas_blocks)):
            proj = next(slots)
            w_in = nb.inputs[f"w{b.width}"]
            _compose_into(proj.dense, prev, w_in)
            for src, t_op in zip(nb.path(b) + [None] * b.ops.count("I"), b.ops):
                dst = next(slots)
                if t_op != "I":
                    dst.load_state_dict(src.state_dict())
            prev = nb.outputs[f"w{b.width}"]
        head, t_head = model.mlm_head, teacher.mlm_head
        _compose_into(head.dense, prev, t_head.dense)
        head.LayerNorm.load_state_dict(t_head.LayerNorm.state_dict())
        head.decoder.bias.copy_(t_head.decoder.bias)
    return model


def _compose_into(dst: nn.Linear, first: nn.Linear | None, second: nn.Linear) -> None:
    """``dst(x) = second(first(x))`` (``first`` None: the identity), composed in float64."""
    if first is None:
        dst.weight.copy_(second.weight)
        dst.bias.copy_(second.bias)
        return
    w2, w1 = second.weight.double(), first.weight.double()
    dst.weight.copy_(w2 @ w1)
    dst.bias.copy_(w2 @ first.bias.double() + second.bias.double())


@torch.no_grad()
def chain_forward(blocks: list[Block], nas_blocks: list[NasBlock], teacher: LvBertForMaskedLM, batch: dict) -> torch.Tensor:
    """The chain of trained blocks on the teacher's embeddings, through the teacher's MLM head at
    the masked positions (``labels != -100``): logits [M, V] (what :func:`extract` builds, unfused)."""
    mask = batch.get("attention_mask")
    x = teacher.lvbert.embeddings(batch["input_ids"], batch.get("token_type_ids"))
    for b, nb in zip(blocks, nas_blocks):
        x = nb(x, b, mask)
    return teacher.mlm_head(x[batch["labels"] != -100])
