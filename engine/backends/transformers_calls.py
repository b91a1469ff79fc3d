"""A GenerateRequest turned into one model family's inputs, and free generation from them.

- Image-text-to-text models (``AutoModelForImageTextToText`` with ``AutoProcessor``; a
  text-only ``AutoModelForCausalLM`` with its tokenizer): chat requests go through the
  processor's own chat template, images as ``{"type": "image"}`` parts; raw prompts put
  the processor's image token where the recipe's placeholder stands.
- InternLM-XComposer 2 / 2.5, through its own code: requests become a query with
  ``<ImageHere>`` placeholders, a history and a system text, handed to the model's
  ``chat()`` with ``hd_num``.

Each :class:`Call` also gives a scoring context (:mod:`.transformers_scoring`) for the
guided decoder.  torch and transformers are imported inside the functions that need them.
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from typing import Any

from ..errors import InputError, ModelError
from ..images import flatten, load_image, open_image
from .base import GenerateRequest, Generation, ImageRef, TextCallback
from .transformers_scoring import CacheContext, Context, EmbedsContext, eos_ids

XC_IMAGE = "<ImageHere>"
XC_START, XC_END = "[UNUSED_TOKEN_146]", "[UNUSED_TOKEN_145]"


class Call:
    """One request prepared for one model family: free generation and a scoring context."""

    def generate(self, request: GenerateRequest, on_text: TextCallback | None) -> Generation:
        raise NotImplementedError

    def context(self) -> Context | None:
        raise NotImplementedError


class HFCall(Call):
    """Processor (or tokenizer) inputs for AutoModelForImageTextToText / CausalLM models."""

    def __init__(
        self, model: Any, processor: Any, tokenizer: Any, request: GenerateRequest, name: str
    ) -> None:
        """``processor`` is None for a text-only model; ``name`` names the model in errors."""
        self.model, self.tokenizer = model, tokenizer
        images: list[Any] = []
        if request.messages:
            owner = processor if _has_template(processor) else self.tokenizer
            if not _has_template(owner):
                raise ModelError(
                    f"model {name} has no chat template",
                    'use recipe = "completion" for base models',
                )
            messages = []
            for message in request.messages:
                if processor is None:
                    content: Any = "".join(p for p in message.content if isinstance(p, str))
                else:
                    content = []
                    for part in message.content:
                        if isinstance(part, ImageRef):
                            content.append({"type": "image"})
                            images.append(_rgb(part))
                        else:
                            content.append({"type": "text", "text": part})
                messages.append({"role": message.role, "content": content})
            text = owner.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
            bos = getattr(self.tokenizer, "bos_token", None)
            special = not (bos and text.startswith(bos))
        else:
            text = request.prompt or ""
            if request.images:
                token = getattr(processor, "image_token", None)
                if not token:
                    raise ModelError(
                        f"model {name}'s processor names no image token",
                        'use recipe = "chat" for this model',
                    )
                _check_placeholders(text, request.image_placeholder, len(request.images))
                text = text.replace(request.image_placeholder, token)
                images = [_rgb(i) for i in request.images]
            special = True
        if processor is not None:
            inputs = processor(
                text=[text], images=images or None, return_tensors="pt", add_special_tokens=special
            )
        else:
            inputs = self.tokenizer([text], return_tensors="pt", add_special_tokens=special)
        self.inputs = _to_device(dict(inputs), model)
        self.text = text

    def generate(self, request: GenerateRequest, on_text: TextCallback | None) -> Generation:
        sample = request.temperature > 0
        kwargs: dict[str, Any] = {"max_new_tokens": request.max_tokens, "do_sample": sample}
        if sample:
            kwargs.update(temperature=request.temperature, top_p=request.top_p)
        else:  # greedy: clear the sampling defaults a generation_config may carry
            kwargs.update(temperature=None, top_p=None, top_k=None)
        if request.repeat_penalty != 1.0:
            kwargs["repetition_penalty"] = request.repeat_penalty
        prompt_length = self.inputs["input_ids"].shape[1]
        if request.stop:
            kwargs["stopping_criteria"] = _stop_on_text(self.tokenizer, request.stop, prompt_length)
        eos = eos_ids(self.model, self.tokenizer)
        pad = getattr(self.model.generation_config, "pad_token_id", None)
        if pad is None:
            kwargs["pad_token_id"] = self.tokenizer.pad_token_id or (eos[0] if eos else None)

        def run(streamer: Any) -> Any:
            return self.model.generate(**self.inputs, **kwargs, streamer=streamer)

        output = _stream(run, self.tokenizer, on_text)
        new = output[0, prompt_length:].tolist()
        while new and new[-1] == kwargs.get("pad_token_id", pad):
            new.pop()
        ended = bool(new) and new[-1] in eos
        text = _cut_at_stop(self.tokenizer.decode(new, skip_special_tokens=True), request.stop)
        return Generation(
            text=text,
            prompt_tokens=prompt_length,
            evaluated_prompt_tokens=prompt_length,
            completion_tokens=len(new),
            truncated=len(new) >= request.max_tokens and not ended,
        )

    def context(self) -> Context:
        return CacheContext(self.model, self.tokenizer, self.inputs, self.text)


class XComposerCall(Call):
    """A request turned into InternLM-XComposer's ``chat()`` arguments."""

    def __init__(self, model: Any, tokenizer: Any, request: GenerateRequest, hd_num: int) -> None:
        self.model, self.tokenizer, self.hd_num = model, tokenizer, hd_num
        self.query, self.history, self.system, refs = _xcomposer_turns(request)
        for ref in refs:
            open_image(ref.path)  # refuse bad images before the model's own code opens them
        self.paths = [str(ref.path) for ref in refs]
        self.params = inspect.signature(model.chat).parameters
        self.v25 = "hd_num" in self.params
        if not self.v25 and len(self.paths) > 1:
            raise InputError(
                "InternLM-XComposer2 takes one image per prompt",
                "use InternLM-XComposer 2.5 for several images",
            )

    def _chat_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"history": self.history}
        if self.v25:
            kwargs.update(image=self.paths, hd_num=self.hd_num)
        else:
            kwargs["image"] = self.paths[0] if self.paths else None
        if self.system:
            kwargs["meta_instruction"] = self.system
            if "use_meta" in self.params:
                kwargs["use_meta"] = True
        return kwargs

    def generate(self, request: GenerateRequest, on_text: TextCallback | None) -> Generation:
        sample = request.temperature > 0
        kwargs = self._chat_kwargs()
        kwargs.update(
            max_new_tokens=request.max_tokens,
            do_sample=sample,
            repetition_penalty=request.repeat_penalty,
        )
        if sample:
            kwargs.update(temperature=request.temperature, top_p=request.top_p)

        def run(streamer: Any) -> Any:
            return self.model.chat(self.tokenizer, self.query, streamer=streamer, **kwargs)

        response, _ = _stream(run, self.tokenizer, on_text)
        tokens = len(self.tokenizer(response, add_special_tokens=False).input_ids)
        prompt_tokens = len(self.tokenizer(self.query, add_special_tokens=False).input_ids)
        return Generation(
            text=_cut_at_stop(response, request.stop),
            prompt_tokens=prompt_tokens,  # text tokens of the query; image tokens not counted
            evaluated_prompt_tokens=prompt_tokens,
            completion_tokens=tokens,
            truncated=tokens >= request.max_tokens,
        )

    def context(self) -> Context | None:
        wrap = getattr(self.model, "interleav_wrap_chat", None)
        if wrap is None or next(iter(inspect.signature(wrap).parameters), "") != "query":
            return None  # XComposer2's variant takes pre-encoded images: match instead
        import torch

        with torch.no_grad():
            inputs, im_mask, _ = wrap(
                self.query,
                self.paths,
                history=self.history,
                meta_instruction=self.system,
                hd_num=self.hd_num,
            )
        embeds, answer_start = inputs["inputs_embeds"], f"{XC_START}assistant\n"
        return EmbedsContext(self.model, self.tokenizer, embeds, im_mask, answer_start, XC_END)


def _xcomposer_turns(request: GenerateRequest) -> tuple[str, list, str, list[ImageRef]]:
    """(query, history pairs, system text, images in order) for XComposer's ``chat()``."""
    turns: list[tuple[str, str]] = []
    refs: list[ImageRef] = []
    if request.messages:
        for message in request.messages:
            text = ""
            for part in message.content:
                if isinstance(part, ImageRef):
                    text += XC_IMAGE
                    refs.append(part)
                else:
                    text += part
            turns.append((message.role, text))
    else:
        prompt = request.prompt or ""
        _check_placeholders(prompt, request.image_placeholder, len(request.images))
        prompt = prompt.replace(request.image_placeholder, XC_IMAGE)
        refs = list(request.images)
        if XC_START not in prompt:
            turns = [("user", prompt)]
        for segment in prompt.split(XC_START)[1:]:
            role, _, body = segment.partition("\n")
            turns.append((role.strip(), body.split(XC_END)[0]))
        if turns and turns[-1][0] == "assistant":
            if turns[-1][1].strip():
                raise InputError(
                    "InternLM-XComposer's chat() cannot continue a started answer",
                    "end the prompt with the assistant marker",
                )
            turns.pop()
    system = "\n".join(t for r, t in turns if r == "system")
    rest = [(r, t) for r, t in turns if r != "system"]
    if not rest or rest[-1][0] != "user":
        raise InputError("the request does not end with a user turn", "report this bug")
    history, pending = [], None
    for role, text in rest[:-1]:
        if role == "user":
            pending = text
        elif pending is not None:
            history.append((pending, text))
            pending = None
    return rest[-1][1], history, system, refs


def _stream(run: Callable[[Any], Any], tokenizer: Any, on_text: TextCallback | None) -> Any:
    """Run ``run(streamer)``; with ``on_text``, in a thread whose text pieces are passed on."""
    if on_text is None:
        return run(None)
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["value"] = run(streamer)
        except BaseException as err:  # noqa: BLE001 - re-raised in the caller's thread
            result["error"] = err
        finally:
            streamer.end()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    for piece in streamer:
        if piece:
            on_text(piece)
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def _stop_on_text(tokenizer: Any, stops: tuple[str, ...], prompt_length: int) -> Any:
    """Stop when the decoded answer contains a stop string (works with any tokenizer)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    window = 8 + 4 * max(len(s) for s in stops)

    class StopOnText(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            start = max(prompt_length, input_ids.shape[1] - window)
            done = [
                any(
                    s and s in tokenizer.decode(row[start:], skip_special_tokens=True)
                    for s in stops
                )
                for row in input_ids
            ]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([StopOnText()])


def _has_template(owner: Any) -> bool:
    return owner is not None and bool(getattr(owner, "chat_template", None))


def _rgb(ref: ImageRef) -> Any:
    return flatten(load_image(ref.path))  # upright, 16-bit scaled, transparency over white


def _check_placeholders(prompt: str, placeholder: str, count: int) -> None:
    found = prompt.count(placeholder) if placeholder else 0
    if count and found != count:
        raise InputError(
            f"the prompt has {found} image placeholders '{placeholder}' for {count} images",
            "put one placeholder per image in the prompt",
        )


def _to_device(inputs: dict, model: Any) -> dict:
    import torch

    device = getattr(model, "device", None) or torch.device("cpu")
    dtype = getattr(model, "dtype", None)
    moved = {}
    for key, value in inputs.items():
        if hasattr(value, "to"):
            value = value.to(device)
            if dtype is not None and torch.is_floating_point(value):
                value = value.to(dtype)
        moved[key] = value
    return moved


def _cut_at_stop(text: str, stops: tuple[str, ...]) -> str:
    cuts = [text.find(s) for s in stops if s and s in text]
    return text[: min(cuts)] if cuts else text
