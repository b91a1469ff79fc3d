"""Log-probabilities of continuations after a fixed prompt, for the guided decoder.

A :class:`Context` is made once per request; :mod:`.guided` asks it for the rows of
log-probabilities that follow the prompt plus some tokens.  Image-text-to-text models run
the prompt once and reuse its KV cache (``DynamicCache.crop``) where the model allows it,
else they run the whole sequence again; InternLM-XComposer scores from its own prompt
embeddings.  torch is imported inside the functions that need it.
"""

from __future__ import annotations

import inspect
from typing import Any


class Context:
    """Log-probabilities of continuations after a fixed prompt."""

    prompt_length = 0

    def __init__(self, model: Any, tokenizer: Any, tail: str) -> None:
        self.model, self.tokenizer = model, tokenizer
        self.tail = tail[-200:]
        self._tail_ids = self._tokens(self.tail)
        self._memo: dict[str, list[int]] = {}
        self.eos_ids = eos_ids(model, tokenizer)

    def _tokens(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def encode(self, text: str) -> list[int]:
        """The tokens ``text`` becomes right after the prompt (tokenised in context)."""
        if text not in self._memo:
            whole = self._tokens(self.tail + text)
            n = len(self._tail_ids)
            if whole[:n] == self._tail_ids:
                self._memo[text] = whole[n:]
            else:
                self._memo[text] = self._tokens(text)
        return self._memo[text]

    def logprobs(self, ids: list[int]) -> Any:
        """Row ``i``: log-probabilities of the token after the prompt plus ``ids[:i]``."""
        raise NotImplementedError


class CacheContext(Context):
    """transformers models: the prompt runs once; continuations reuse its KV cache."""

    def __init__(self, model: Any, tokenizer: Any, inputs: dict, text: str) -> None:
        import torch

        super().__init__(model, tokenizer, text)
        self.inputs = inputs
        self.prompt_length = int(inputs["input_ids"].shape[1])
        text_cfg = (
            model.config.get_text_config() if hasattr(model.config, "get_text_config") else None
        )
        layer_types = getattr(text_cfg, "layer_types", None) or []
        sliding = getattr(text_cfg, "sliding_window", None) and (
            not layer_types or "sliding_attention" in layer_types
        )
        with torch.no_grad():
            out = model(**inputs, use_cache=not sliding)
        self.last = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        cache = getattr(out, "cache", None) or getattr(out, "past_key_values", None)
        self.cache = cache if hasattr(cache, "crop") and not sliding else None
        # transformers 5.2x renamed forward's ``past_key_values`` to ``cache``.
        params = inspect.signature(model.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"

    def logprobs(self, ids: list[int]) -> Any:
        import torch

        if not ids:
            return self.last[None]
        device = self.inputs["input_ids"].device
        new = torch.tensor([ids], device=device)
        with torch.no_grad():
            if self.cache is not None:
                try:
                    mask = torch.ones((1, self.prompt_length + len(ids)), device=device)
                    mask = mask.to(self.inputs.get("attention_mask", mask).dtype)
                    cached = {self.cache_arg: self.cache}
                    out = self.model(input_ids=new, attention_mask=mask, use_cache=True, **cached)
                    self.cache.crop(-len(ids))  # drop them again: negative works in 4.x and 5.x
                    rows = torch.log_softmax(out.logits[0].float(), dim=-1)
                    return torch.cat([self.last[None], rows])
                except (TypeError, ValueError, RuntimeError, AttributeError, IndexError):
                    self.cache = None  # this model cannot continue from a cropped cache
            inputs = dict(self.inputs)
            for key, value in self.inputs.items():
                if hasattr(value, "shape") and tuple(value.shape[:2]) == (1, self.prompt_length):
                    fill = new if key == "input_ids" else torch.zeros_like(new)
                    if key == "attention_mask":
                        fill = torch.ones_like(new)
                    inputs[key] = torch.cat([value, fill.to(value.dtype)], dim=1)
            out = self.model(**inputs, use_cache=False)
            rows = out.logits[0, self.prompt_length - 1 :].float()
            return torch.log_softmax(rows, dim=-1)


class EmbedsContext(Context):
    """InternLM-XComposer: its prompt embeddings (text and images) plus token embeddings.

    ``answer_start`` is the text the prompt ends with (the assistant's turn marker), for
    tokenising answers in context; ``answer_end`` is the token that closes a turn.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        embeds: Any,
        im_mask: Any,
        answer_start: str,
        answer_end: str,
    ) -> None:
        super().__init__(model, tokenizer, answer_start)
        self.embeds, self.im_mask = embeds, im_mask
        self.prompt_length = int(embeds.shape[1])
        end = tokenizer.convert_tokens_to_ids(answer_end)
        if isinstance(end, int) and end != tokenizer.unk_token_id and end not in self.eos_ids:
            self.eos_ids.append(end)

    def logprobs(self, ids: list[int]) -> Any:
        import torch

        embeds, mask = self.embeds, self.im_mask
        if ids:
            new = torch.tensor([ids], device=embeds.device)
            step = self.model.get_input_embeddings()(new).to(embeds.dtype)
            embeds = torch.cat([embeds, step], dim=1)
            pad = torch.zeros((1, len(ids)), dtype=mask.dtype, device=mask.device)
            mask = torch.cat([mask, pad], dim=1)
        with torch.no_grad():
            out = self.model(inputs_embeds=embeds, im_mask=mask, use_cache=False)
        rows = out.logits[0, self.prompt_length - 1 :].float()
        return torch.log_softmax(rows, dim=-1)


def eos_ids(model: Any, tokenizer: Any) -> list[int]:
    """The tokens that end an answer: the generation config's, else the tokenizer's."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = getattr(tokenizer, "eos_token_id", None)
    ids = eos if isinstance(eos, list) else [eos]
    return [int(i) for i in ids if i is not None]
