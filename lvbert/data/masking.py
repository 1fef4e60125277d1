"""Dynamic masking for masked-language-model pre-training.

Per sequence, ``k = clamp(round(mask_prob * n), 1, max_predictions)`` of the
``n`` maskable tokens (not special, not padding) are chosen uniformly without
replacement, as in ELECTRA (Clark et al. 2020; at most
``int(0.155 * L)`` = 19 for L = 128). Of the chosen positions

- ``mode="bert"``:    80% become ``[MASK]``, 10% a random token, 10% stay;
- ``mode="electra"``: 85% become ``[MASK]``, 15% stay.

``labels`` hold the original id at chosen positions and -100 elsewhere (the
Hugging Face convention): the model computes vocabulary logits only where
``labels != -100``. All randomness comes from an explicit ``torch.Generator``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Sequence

import torch

from lvbert.data.packed import PreparedData, open_data
from lvbert.errors import LvBertError

MODES = {"bert": (0.8, 0.1), "electra": (0.85, 0.0)}  # (share -> [MASK], share -> random token)
IGNORE_INDEX = -100


@dataclass
class MaskingConfig:
    """How tokens are chosen and replaced."""

    mask_prob: float = 0.15  # share of maskable tokens chosen per sequence
    mode: str = "bert"  # "bert" (80/10/10) or "electra" (85/15)
    max_predictions: int | None = None  # cap per sequence; None -> int((mask_prob + 0.005) * L), 19 at L=128
    whole_word: bool = False  # choose whole words (a token and its "##" continuations)

    def __post_init__(self):
        if self.mode not in MODES:
            raise LvBertError(f"unknown masking mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if not 0.0 < self.mask_prob < 1.0:
            raise LvBertError(f"mask_prob {self.mask_prob} must be between 0 and 1")
        if self.max_predictions is not None and self.max_predictions < 1:
            raise LvBertError(f"max_predictions {self.max_predictions} must be at least 1")

    def predictions_for(self, seq_len: int) -> int:
        if self.max_predictions is not None:
            return self.max_predictions
        return max(1, int((self.mask_prob + 0.005) * seq_len))


@dataclass
class MaskingVocab:
    """The ids masking needs to know about."""

    mask_token_id: int
    vocab_size: int
    special_ids: Sequence[int]  # never chosen, never drawn as a random replacement
    continuation_ids: Sequence[int] = field(default=())  # "##" pieces, for whole-word masking

    @classmethod
    def from_tokenizer(cls, tokenizer) -> "MaskingVocab":
        vocab = tokenizer.get_vocab()
        special = sorted({i for i in tokenizer.all_special_ids if i is not None})
        continuation = sorted(i for t, i in vocab.items() if t.startswith("##"))
        return cls(tokenizer.mask_token_id, len(tokenizer), special, continuation)


def mask_tokens(
    input_ids: torch.Tensor,
    special_tokens_mask: torch.Tensor,
    *,
    mask_token_id: int,
    vocab_size: int,
    config: MaskingConfig,
    generator: torch.Generator,
    continuation_mask: torch.Tensor | None = None,
    random_token_ids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask a batch; return ``(masked_input_ids, labels)``.

    Args:
        input_ids: [B, L] token ids.
        special_tokens_mask: [B, L] bool, True where a token must never be chosen
            (special tokens *and* padding).
        mask_token_id, vocab_size: the tokenizer's [MASK] id and size.
        config: see :class:`MaskingConfig`.
        generator: the only source of randomness.
        continuation_mask: [B, L] bool, True at "##" pieces; needed for ``config.whole_word``.
        random_token_ids: ids a random replacement is drawn from (default: all of ``range(vocab_size)``).
    Returns masked ids [B, L] and labels [B, L] (original id where chosen, -100 elsewhere).
    """
    bsz, seq_len = input_ids.shape
    device = input_ids.device
    maskable = ~special_tokens_mask.bool()
    # words: a maskable token starts one unless it is a "##" piece following a maskable token
    if config.whole_word:
        if continuation_mask is None:
            raise LvBertError("whole-word masking needs continuation_mask (which tokens are '##' pieces)")
        prev_maskable = torch.nn.functional.pad(maskable[:, :-1], (1, 0), value=False)
        starts = maskable & ~(continuation_mask.bool() & prev_maskable)
    else:
        starts = maskable
    word = (torch.cumsum(starts.long(), dim=1) - 1).clamp(min=0)  # [B, L] word index of each token

    # one random score per word; tokens sort by their word's score, so a word's pieces stay together
    word_score = torch.rand(bsz, seq_len, generator=generator).to(device)
    score = torch.gather(word_score, 1, word).masked_fill(~maskable, 2.0)
    order = torch.sort(score, dim=1, stable=True).indices
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(seq_len, device=device).expand(bsz, -1))

    n = maskable.sum(dim=1)
    k = torch.round(n.float() * config.mask_prob).long().clamp(min=1, max=config.predictions_for(seq_len))
    k = torch.where(n > 0, k, torch.zeros_like(k))
    chosen = (rank < k[:, None]) & maskable
    if config.whole_word:  # keep a word only if all its pieces made the cut
        whole = torch.ones(bsz, seq_len, dtype=torch.long, device=device)
        whole = whole.scatter_reduce(1, word, chosen.long().masked_fill(~maskable, 1), reduce="amin")
        chosen = torch.gather(whole, 1, word).bool() & maskable

    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, IGNORE_INDEX))
    to_mask, to_random = MODES[config.mode]
    u = torch.rand(bsz, seq_len, generator=generator).to(device)
    masked = input_ids.clone()
    masked[chosen & (u < to_mask)] = mask_token_id
    if to_random > 0:
        random_slots = chosen & (u >= to_mask) & (u < to_mask + to_random)
        pool = random_token_ids if random_token_ids is not None else torch.arange(vocab_size)
        draw = torch.randint(len(pool), (bsz, seq_len), generator=generator)
        masked[random_slots] = pool.to(device)[draw.to(device)][random_slots]
    return masked, labels


class MlmCollator:
    """Batch PackedDataset items and mask them with a private, seeded generator.

    Args:
        tokenizer_or_ids: a tokenizer, a :class:`MaskingVocab`, or prepared data (a folder or
            :class:`lvbert.data.packed.PreparedData`; its tokenizer copy is used).
        config: masking settings (default: ``MaskingConfig()``).
        seed: seeds the collator's own ``torch.Generator``; in DataLoader worker ``w``
            the generator is re-seeded with ``seed + 1000003 * (w + 1)`` so workers differ.
    """

    def __init__(self, tokenizer_or_ids, config: MaskingConfig | None = None, seed: int = 0):
        if isinstance(tokenizer_or_ids, (str, os.PathLike, PreparedData)):
            tokenizer_or_ids = open_data(tokenizer_or_ids).tokenizer
        vocab = tokenizer_or_ids if isinstance(tokenizer_or_ids, MaskingVocab) else MaskingVocab.from_tokenizer(tokenizer_or_ids)
        self.vocab = vocab
        self.config = config or MaskingConfig()
        self.seed = seed
        self.special_ids = torch.tensor(sorted(set(vocab.special_ids)), dtype=torch.long)
        is_special = torch.zeros(vocab.vocab_size, dtype=torch.bool)
        is_special[self.special_ids] = True
        self.random_token_ids = torch.nonzero(~is_special).squeeze(1)
        self.is_continuation = torch.zeros(vocab.vocab_size, dtype=torch.bool)
        if len(vocab.continuation_ids):
            self.is_continuation[torch.tensor(list(vocab.continuation_ids), dtype=torch.long)] = True
        self.generator = torch.Generator().manual_seed(seed)
        self._worker = None

    def _check_worker(self) -> None:
        info = torch.utils.data.get_worker_info()
        worker = None if info is None else info.id
        if worker != self._worker:
            self._worker = worker
            self.generator.manual_seed(self.seed + 1000003 * (worker + 1) if worker is not None else self.seed)

    def mask(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Mask a [B, L] batch of ids; padding is found from ``attention_mask`` (or the pad id being special)."""
        special = torch.isin(input_ids, self.special_ids)
        if attention_mask is not None:
            special |= attention_mask == 0
        return mask_tokens(
            input_ids,
            special,
            mask_token_id=self.vocab.mask_token_id,
            vocab_size=self.vocab.vocab_size,
            config=self.config,
            generator=self.generator,
            continuation_mask=self.is_continuation[input_ids] if self.config.whole_word else None,
            random_token_ids=self.random_token_ids,
        )

    def __call__(self, items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        self._check_worker()
        batch = {key: torch.stack([item[key] for item in items]) for key in ("input_ids", "token_type_ids", "attention_mask")}
        batch["input_ids"], batch["labels"] = self.mask(batch["input_ids"], batch["attention_mask"])
        return batch


def fixed_mask_validation(
    data_dir,
    num_sequences: int = 256,
    seed: int = 0,
    mode: str = "bert",
    split: str = "valid",
    config: MaskingConfig | None = None,
) -> dict[str, torch.Tensor]:
    """A deterministic masked batch: the first ``num_sequences`` of a split, masked with ``seed``.

    ``data_dir`` is a prepared folder or its :class:`lvbert.data.packed.PreparedData`.
    The same folder, count, seed and mode always give the same tensors, so
    fitness values of different architectures in the search are comparable.
    Returns a dict of ``input_ids``, ``token_type_ids``, ``attention_mask``, ``labels`` ([N, L]).
    """

    data = open_data(data_dir)
    dataset = data.split(split)
    if len(dataset) == 0:
        raise LvBertError(f"the {split} split of {data.path} is empty; prepare the data with --valid-fraction > 0")
    count = min(num_sequences, len(dataset))
    collator = MlmCollator(data, config or MaskingConfig(mode=mode), seed=seed)
    return collator([dataset[i] for i in range(count)])
