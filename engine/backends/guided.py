"""Constrained answers that never come from hoping the model complies.

- ``choices``: every choice is scored by its log-likelihood after the prompt (its tokens,
  then the end of the answer) and the best one is returned exactly.
- ``json_schema``: schema-guided decoding.  The JSON's structure is written here and the
  model decides only what the schema leaves open: enum values, booleans and bounded
  integers by scoring the candidates, array lengths by scoring "close" against "one more"
  (within minItems/maxItems), string contents by generation where each token is the
  likeliest one that keeps the string valid (minLength, maxLength, and ``pattern`` checked
  on prefixes with the ``regex`` module), closed at the model's own quote and escaped here.
  The subset covers the engine's schemas (arrays of strings, enums or integers; objects
  with such fields); anything else (``anyOf``, ``$ref``, free-form objects ...) is refused
  with a ``ModelError``, never guessed.

Everything here works on a :class:`~.transformers_scoring.Context` (log-probabilities of
continuations after the prompt); a model without one has its free answer checked against
the constraint instead (``structured.check_answer``).  torch is imported inside the
functions that need it.
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any

from ..errors import BackendError, InputError, ModelError
from .base import GenerateRequest, Generation
from .structured import check_answer, schema_error

if TYPE_CHECKING:
    from .transformers_calls import Call
    from .transformers_scoring import Context


def constrained_answer(call: Call, request: GenerateRequest) -> Generation:
    """The answer to a request with ``choices`` or a ``json_schema``, by scoring."""
    ctx = call.context()
    if ctx is None:  # a remote-code model without a scoring entry point
        return match_choice(call.generate(request, None), request)
    if request.choices is not None:
        text = best_choice(ctx, list(request.choices))
    else:
        text = JsonWriter(ctx, request).write(request.json_schema or {})
    return Generation(
        text=text,
        prompt_tokens=ctx.prompt_length,
        evaluated_prompt_tokens=ctx.prompt_length,
        completion_tokens=len(ctx.encode(text)),
    )


def _score(ctx: Context, base: list[int], full: list[int], end: bool) -> float:
    """log P(full[k:] | prompt + full[:k]), k = the prefix ``full`` shares with ``base``."""
    k = 0
    while k < min(len(base), len(full)) and base[k] == full[k]:
        k += 1
    rows = ctx.logprobs(full)
    total = float(sum(rows[i, full[i]] for i in range(k, len(full))))
    if end and ctx.eos_ids:
        total += float(rows[len(full), ctx.eos_ids].logsumexp(-1))
    return total


def best_choice(ctx: Context, choices: list[str]) -> str:
    """The choice the model finds most likely as the whole answer (ties: the first)."""
    if not choices:
        raise InputError("choices is empty", "give at least one choice")
    scores = [_score(ctx, [], ctx.encode(c), end=True) for c in choices]
    return choices[max(range(len(choices)), key=lambda i: scores[i])]


def match_choice(answer: Generation, request: GenerateRequest) -> Generation:
    text, why = check_answer(answer.text, request)
    if text is None:
        raise BackendError(
            f"the model's answer does not satisfy the constraint: {why}",
            "use InternLM-XComposer 2.5 (its scoring interface), or another model",
        )
    answer.text = text
    return answer


class JsonWriter:
    """Schema-guided JSON: the structure is written here, the model fills what is open."""

    MAX_ITEMS = 32
    INT_SPAN = 100
    SEARCH = 2048  # likeliest tokens tried, per step, for one that keeps a string valid

    def __init__(self, ctx: Context, request: GenerateRequest) -> None:
        self.ctx, self.request = ctx, request
        self.text = ""
        self.budget = request.max_tokens

    def write(self, schema: dict) -> str:
        self.value(schema, "$")
        error = schema_error(json.loads(self.text), schema)
        if error:  # the writer follows the schema; a mismatch is a bug here
            raise BackendError(f"guided JSON broke its schema ({error})", "report this bug")
        return self.text

    def pick(self, options: list[str]) -> str:
        base = self.ctx.encode(self.text)
        scores = [
            _score(self.ctx, base, self.ctx.encode(self.text + o), end=False) for o in options
        ]
        best = options[max(range(len(options)), key=lambda i: scores[i])]
        self.text += best
        return best

    def value(self, schema: dict, where: str) -> None:
        refused = ("anyOf", "oneOf", "allOf", "$ref", "not")
        refused += () if schema.get("type") == "string" else ("pattern",)
        unsupported = [k for k in refused if k in schema]
        if unsupported:
            raise ModelError(
                f"json_schema at {where} uses {unsupported[0]}, which the transformers "
                "backend's guided decoding does not support",
                "simplify the schema (types, enum, const, properties, items, lengths, bounds)",
            )
        kind = schema.get("type")
        if "const" in schema:
            self.text += json.dumps(schema["const"], ensure_ascii=False)
        elif "enum" in schema:
            self.pick([json.dumps(v, ensure_ascii=False) for v in schema["enum"]])
        elif kind == "string":
            self.string(schema)
        elif kind in ("integer", "number"):
            low = int(math.ceil(schema.get("minimum", 0)))
            high = int(math.floor(schema.get("maximum", low + self.INT_SPAN)))
            if high < low:
                raise ModelError(f"json_schema at {where} allows no integer", "fix its bounds")
            self.pick([str(i) for i in range(low, min(high, low + 4 * self.INT_SPAN) + 1)])
        elif kind == "boolean":
            self.pick(["true", "false"])
        elif kind == "null":
            self.text += "null"
        elif kind == "array":
            self.array(schema, where)
        elif kind == "object" and schema.get("properties"):
            self.text += "{"
            for i, (key, sub) in enumerate(schema["properties"].items()):
                self.text += (", " if i else "") + json.dumps(key, ensure_ascii=False) + ": "
                self.value(sub, f"{where}.{key}")
            self.text += "}"
        else:
            raise ModelError(
                f"json_schema at {where} has type {kind!r}, which guided decoding cannot write",
                "give a type (string, integer, boolean, array, or object with properties)",
            )

    def array(self, schema: dict, where: str) -> None:
        items = schema.get("items", {})
        low = int(schema.get("minItems", 0))
        high = min(int(schema.get("maxItems", self.MAX_ITEMS)), self.MAX_ITEMS)
        enum = items.get("enum") if isinstance(items, dict) else None
        unique = bool(schema.get("uniqueItems"))
        self.text += "["
        count, used = 0, []
        while count < high:
            sep = ", " if count else ""
            if enum is not None:
                left = [v for v in enum if not (unique and v in used)]
                options = [sep + json.dumps(v, ensure_ascii=False) for v in left]
                if not options:
                    break
                if count >= low:
                    options.append("]")
                chosen = self.pick(options)
                if chosen == "]":
                    return
                used.append(json.loads(chosen[len(sep) :]))
            else:
                if count >= low:
                    opener = sep + _opener(items)
                    if self.budget <= 0:  # out of tokens: close the array here
                        self.text += "]"
                        return
                    if self.pick(["]", opener]) == "]":
                        return
                    self.text = self.text[: -len(opener)] + sep
                else:
                    self.text += sep
                self.value(items, f"{where}[{count}]")
            count += 1
        self.text += "]"

    def string(self, schema: dict) -> None:
        """Generate a string's content; every token keeps it within the schema's rules."""
        import torch

        rules = _StringRules(schema)
        tokenizer, eos = self.ctx.tokenizer, set(self.ctx.eos_ids)
        skip = set(tokenizer.all_special_ids) - eos
        before = self.text
        start = self.ctx.encode(before + '"')
        ids, value = list(start), ""
        generator = torch.Generator().manual_seed(self.request.seed)
        for _ in range(max(min(rules.max_len + 4, self.budget), 8)):
            row = self.ctx.logprobs(ids)[-1]
            order = torch.argsort(row, descending=True)[: self.SEARCH].tolist()
            if self.request.temperature > 0:
                probs = torch.softmax(row.cpu() / self.request.temperature, dim=-1)
                order.insert(0, int(torch.multinomial(probs, 1, generator=generator)))
            done, picked = False, None
            for token in order:
                if token in skip:
                    continue
                if token in eos:
                    if rules.complete(value):
                        done = True
                        break
                    continue
                piece = tokenizer.decode(ids[len(start) :] + [token], skip_special_tokens=True)
                cut = min((i for i in (piece.find('"'), piece.find("\n")) if i >= 0), default=-1)
                if cut >= 0:  # the model closes the string here
                    if rules.complete(piece[:cut]):
                        value, done = piece[:cut], True
                        break
                elif rules.prefix(piece):
                    picked = (token, piece)
                    break
            if done:
                break
            if picked is None:
                raise BackendError(
                    f"none of the model's {len(order)} likeliest tokens continues the string "
                    f"{value!r} within the schema ({rules})",
                    "loosen the schema or use another model",
                )
            ids.append(picked[0])
            value = picked[1]
        else:
            if not rules.complete(value):
                raise BackendError(
                    f"the string {value!r} ran out of tokens before meeting the schema ({rules})",
                    "raise max_tokens or loosen the schema",
                )
        self.budget -= len(ids) - len(start)
        if value.strip() != value and rules.complete(value.strip()):
            value = value.strip()
        self.text = before + json.dumps(value, ensure_ascii=False)


class _StringRules:
    """minLength, maxLength and pattern (JSON Schema: a regex search), checked on prefixes too."""

    def __init__(self, schema: dict) -> None:
        self.min_len = int(schema.get("minLength", 0))
        self.max_len = int(schema.get("maxLength", 200))
        self.pattern = schema.get("pattern")
        self.regex: Any = None
        if self.pattern:
            import regex  # a dependency of transformers; ``re`` cannot match prefixes

            try:
                self.regex = regex.compile(self.pattern)
            except regex.error as err:
                raise ModelError(
                    f"json_schema pattern {self.pattern!r} is not a valid regular expression ({err})",
                    "fix the pattern",
                ) from None

    def prefix(self, text: str) -> bool:
        """Whether ``text`` can still grow into a valid string."""
        if len(text) > self.max_len:
            return False
        return self.regex is None or self.regex.search(text, partial=True) is not None

    def complete(self, text: str) -> bool:
        if not self.min_len <= len(text) <= self.max_len:
            return False
        return self.regex is None or self.regex.search(text) is not None

    def __str__(self) -> str:
        shown = f"pattern {self.pattern!r}, " if self.pattern else ""
        return f"{shown}length {self.min_len} to {self.max_len}"


def _opener(schema: Any) -> str:
    kind = schema.get("type") if isinstance(schema, dict) else None
    return {"string": '"', "array": "[", "object": "{", "boolean": "t", "null": "n"}.get(
        str(kind), "1"
    )
