"""Security of the REST API as Jupyter users expect it: auth, XSRF, confined paths, size limits.

Nothing here reaches the model: every refusal happens before a job is queued.
"""

from __future__ import annotations

import io
import os
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import pytest
from jupyter_server.auth import Authorizer
from PIL import Image
from test_jupyter_support import *  # noqa: F403 - pytest-jupyter fixtures and helpers
from test_jupyter_support import Api, server_config
from xcomposer import Engine

BODY_LIMIT = 20_000
UPLOAD_LIMIT = 300_000


class ReadOnlyAuthorizer(Authorizer):
    """A user who may read the xcomposer resource (status, jobs) but not write (start jobs)."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource != "xcomposer" or action == "read"


class NoXComposerAuthorizer(Authorizer):
    """A user with every permission except any on the xcomposer resource."""

    def is_authorized(self, handler: Any, user: Any, action: str, resource: str) -> bool:
        return resource != "xcomposer"


@pytest.fixture
def authorizer_class() -> type[Authorizer] | None:
    return None  # the server's default; tests parametrize it


@pytest.fixture
def jp_server_config(authorizer_class: type[Authorizer] | None, real_engine: Engine) -> Any:
    config = server_config(real_engine, max_body_bytes=BODY_LIMIT, max_upload_bytes=UPLOAD_LIMIT)
    if authorizer_class is not None:
        config.ServerApp.authorizer_class = authorizer_class
    return config


@pytest.fixture(scope="module")
def outside(tmp_path_factory: pytest.TempPathFactory, captioned_images: Path) -> Path:
    """A folder outside the Jupyter root with an image in it."""
    folder = tmp_path_factory.mktemp("outside-root")
    (folder / "secret.png").write_bytes((captioned_images / "cat.png").read_bytes())
    return folder


@pytest.fixture(scope="module")
def escapes(jupyter_root: Path, outside: Path) -> Path:
    """Symlinks inside the root that lead out of it, and a hidden folder."""
    links = jupyter_root / "links"
    links.mkdir(exist_ok=True)
    for name, target in [("escape.png", outside / "secret.png"), ("escape-dir", outside)]:
        if not (links / name).is_symlink():
            os.symlink(target, links / name)
    hidden = jupyter_root / ".hidden"
    hidden.mkdir(exist_ok=True)
    (hidden / "cat.png").write_bytes((jupyter_root / "images" / "cat.png").read_bytes())
    return links


def png_bytes(size: tuple[int, int] = (64, 48)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 40, 40)).save(out, "PNG")
    return out.getvalue()


# -- authentication and authorisation ----------------------------------------------------------
def test_no_token_is_refused(api: Api) -> None:
    no_token = {"Authorization": ""}
    code, reply = api.get("xcomposer", "status", headers=no_token)
    assert code == 403, reply
    code, reply = api.post("xcomposer", "compose", body={"instruction": "x"}, headers=no_token)
    assert code == 403, reply
    code, reply = api.call("GET", "xcomposer", "status", headers={"Authorization": "token wrong"})
    assert code == 403


@pytest.mark.parametrize("authorizer_class", [ReadOnlyAuthorizer])
def test_a_user_without_write_permission_cannot_start_jobs(api: Api) -> None:
    code, status = api.get("xcomposer", "status")
    assert code == 200 and status["backend"] == "llamacpp"
    for op, body in [
        ("compose", {"instruction": "Write about cats", "library": "images"}),
        ("illustrate", {"text": "A cat.", "library": "images"}),
        ("describe", {"path": "images/cat.png"}),
        ("edit", {"op": "remove_image", "article": {"title": "", "paragraphs": []}}),
    ]:
        code, reply = api.post("xcomposer", op, body=body)
        assert code == 403, (op, reply)
        assert "not authorized to write on resource: xcomposer" in reply["error"]
    assert api.serverapp.extension_manager.extension_apps["jupyter_xcomposer"]  # still loaded


@pytest.mark.parametrize("authorizer_class", [NoXComposerAuthorizer])
def test_a_user_without_the_xcomposer_permission_gets_403_everywhere(api: Api) -> None:
    code, reply = api.get("xcomposer", "status")
    assert code == 403 and "resource: xcomposer" in reply["error"]
    code, _ = api.get("api", "contents")  # the rest of Jupyter still works for this user
    assert code == 200


# -- XSRF: cookie-authenticated state changes need the _xsrf token ------------------------------
def login_cookies(api: Api) -> dict[str, str]:
    """Cookies as a browser holds them: the login page's _xsrf, then a token login."""
    jar: SimpleCookie = SimpleCookie()
    for parts, params in [(("login",), None), (("api", "status"), {"token": api.token})]:
        code, reply = api.call(
            "GET", *parts, params=params, headers={"Authorization": ""}, raw=True
        )
        assert code == 200, parts
        for header in reply.headers.get_list("Set-Cookie"):
            jar.load(header)
    return {k: v.value for k, v in jar.items()}


def test_xsrf_is_enforced_for_cookie_sessions_not_for_tokens(api: Api) -> None:
    cookies = login_cookies(api)
    assert "_xsrf" in cookies, cookies
    cookie_header = "; ".join(f"{k}={v}" for k, v in cookies.items())
    body = {"path": "images/cat.png"}
    # A browser session (cookie, no token): GET works, POST without the XSRF token does not.
    headers = {"Authorization": "", "Cookie": cookie_header}
    code, reply = api.get("xcomposer", "status", headers=headers)
    assert code == 200, reply
    code, reply = api.post("xcomposer", "describe", body=body, headers=headers)
    assert code == 403 and "'_xsrf' argument missing" in reply["error"], reply
    code, reply = api.call(
        "DELETE", "xcomposer", "jobs", "1-0123456789abcdef01234567", headers=headers
    )
    assert code == 403
    # With the XSRF token the same session gets past the check to the request's own checks
    # (this model has no vision, so describe is refused before a job is queued: 422).
    code, reply = api.post(
        "xcomposer", "describe", body=body, headers={**headers, "X-XSRFToken": cookies["_xsrf"]}
    )
    assert code == 422 and "vision" in reply["error"], reply
    # A token request needs no XSRF token (it cannot come from another site's page).
    code, reply = api.post("xcomposer", "describe", body=body)
    assert code == 422 and "vision" in reply["error"], reply


# -- paths: confined to the root, resolved through the contents manager ------------------------
@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("../outside-root0/secret.png", 400, "contains '..'"),
        ("images/../../secret.png", 400, "contains '..'"),
        ("/etc/hostname", 400, "absolute"),
        ("~/secret.png", 400, "absolute"),
        ("images\\cat.png", 400, "absolute or not a plain relative path"),
        ("C:/Windows/win.ini", 400, "absolute"),
        ("links/escape.png", 403, "outside the Jupyter root"),
        ("links/escape-dir/secret.png", 403, "outside the Jupyter root"),
        ("images/no-such.png", 404, "not found"),
        (".hidden/cat.png", 404, "hidden"),
        ("", 400, "needs 'path'"),
    ],
)
def test_describe_paths_are_confined_to_the_root(
    api: Api, escapes: Path, path: str, status: int, message: str
) -> None:
    code, reply = api.post("xcomposer", "describe", body={"path": path})
    assert code == status, reply
    assert set(reply) == {"error"} and message in reply["error"]
    assert str(escapes.parent) not in reply["error"]  # no server paths leak


def test_library_folders_are_confined_too(api: Api, escapes: Path) -> None:
    for library, status in [("links/escape-dir", 403), ("..", 400), ("/tmp", 400)]:
        for op, body in [
            ("compose", {"instruction": "Write about cats", "library": library}),
            ("illustrate", {"text": "A cat.", "library": [library]}),
        ]:
            code, reply = api.post("xcomposer", op, body=body)
            assert code == status, (op, library, reply)


def test_articles_sent_back_cannot_point_figures_outside(api: Api, outside: Path) -> None:
    for image, status in [(str(outside / "secret.png"), 403), ("../secret.png", 400)]:
        article = {
            "title": "T",
            "paragraphs": [{"text": "A cat.", "kind": "text"}],
            "figures": [{"after": 0, "image": image, "caption": "c", "alt": "a"}],
        }
        code, reply = api.post(
            "xcomposer", "edit", body={"op": "remove_image", "article": article, "figure": 0}
        )
        assert code == status, reply


# -- sizes and uploads -----------------------------------------------------------------------
def test_oversize_bodies_are_413(api: Api) -> None:
    body = {"instruction": "x" * (BODY_LIMIT + 10), "library": "images"}
    code, reply = api.post("xcomposer", "compose", body=body)
    assert code == 413 and "over the 20,000 byte limit" in reply["error"]
    big = png_bytes((1200, 1200)) + os.urandom(UPLOAD_LIMIT)
    code, reply = api.post("xcomposer", "describe", body=big, headers={"Content-Type": "image/png"})
    assert code == 413 and "uploaded image" in reply["error"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"this is not an image at all", "is not an image"),
        (png_bytes()[:60], "truncated or corrupt"),
    ],
)
def test_corrupt_uploads_are_400_with_one_line(api: Api, data: bytes, message: str) -> None:
    code, reply = api.post(
        "xcomposer",
        "describe",
        body=data,
        headers={"Content-Type": "application/octet-stream"},
        params={"name": "plot.png"},
    )
    assert code == 400, reply
    assert set(reply) == {"error"}
    assert message in reply["error"] and "\n" not in reply["error"]
    assert "xcomposer-uploads" not in reply["error"]  # the server's temp path stays private


def test_a_valid_upload_passes_the_image_checks(api: Api) -> None:
    code, reply = api.post(
        "xcomposer", "describe", body=png_bytes(), headers={"Content-Type": "image/png"}
    )
    # The image is fine; the embedded model has no vision, which is said before any job runs.
    assert code == 422 and "vision" in reply["error"], reply
