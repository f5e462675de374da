"""Chat bodies: Owncast's rendering examples and a list of XSS payloads that must come out inert."""

from __future__ import annotations

import re

import pytest

from owncast_fast.chat.filter import is_profane
from owncast_fast.chat.render import render_chat_body, render_markdown, strip_html

EMOJI = {"party": "/img/emoji/party.gif"}

XSS_PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    '<a href="javascript:alert(1)">click</a>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![x](javascript:alert(1))",
    '<iframe src="https://evil.example"></iframe>',
    '<body onload="alert(1)">',
    '<div style="background:url(javascript:alert(1))">x</div>',
    '<a href="https://ok.example" onclick="alert(1)">x</a>',
    '<img src="/img/emoji/x.gif" onerror="alert(1)">',
    '<img src="/img/emoji/../../x.js">',
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    '"><script>alert(1)</script>',
    "<<script>script>alert(1)<</script>/script>",
    "<details open ontoggle=alert(1)>",
    '<input autofocus onfocus="alert(1)">',
    "<object data=javascript:alert(1)>",
    '<form action="javascript:alert(1)"><button>x</button></form>',
    "<!--<script>alert(1)</script>-->",
    "`<script>alert(1)</script>`",
    "<ScRiPt>alert(1)</sCrIpT>",
    "<a href='&#106;avascript:alert(1)'>x</a>",
    "<base href=javascript:/>",
    "<meta http-equiv=refresh content=0;url=javascript:alert(1)>",
]

# Inside a tag: event handlers, script URLs, inline styles. Text may say anything: it is escaped.
DANGEROUS_IN_TAG = re.compile(r"\son[a-z]+=|javascript:|data:|style=|&#", re.I)


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_xss_payloads_are_inert(payload: str) -> None:
    html = render_chat_body(payload, EMOJI)
    for tag in re.findall(r"<[^>]*>", html):
        assert not DANGEROUS_IN_TAG.search(tag), html
        assert re.match(r"</?(a|br|p|strong|em|code|pre|img)[\s>/]", tag), html
        if tag.startswith("<img"):
            assert re.search(r'src="/img/emoji/[^".%]*\.[A-Za-z]*"', tag), html


@pytest.mark.parametrize("payload", XSS_PAYLOADS)
def test_names_never_carry_markup(payload: str) -> None:
    assert "<" not in strip_html(payload)


def test_paragraph_and_emphasis() -> None:
    assert render_chat_body("hello **world** _you_ `code`") == (
        "<p>hello <strong>world</strong> <em>you</em> <code>code</code></p>"
    )


def test_heading_becomes_text() -> None:
    assert render_chat_body("## heading") == "heading"


def test_remote_images_are_removed_and_emoji_images_kept() -> None:
    assert "<img" not in render_chat_body("![](https://example.com/x.png)")
    assert render_chat_body("![](/img/emoji/x.gif)") == '<p><img src="/img/emoji/x.gif"></p>'


def test_links_get_rel_and_absolute_ones_a_blank_target() -> None:
    assert render_chat_body("see https://owncast.online") == (
        '<p>see <a href="https://owncast.online" target="_blank" rel="nofollow noreferrer noopener">'
        "https://owncast.online</a></p>"
    )
    assert render_chat_body("[home](/x)") == '<p><a href="/x" rel="nofollow noreferrer noopener">home</a></p>'


def test_bare_domains_are_not_linked() -> None:
    assert render_chat_body("www.example.com") == "<p>www.example.com</p>"


def test_custom_emoji_shortcode_is_case_insensitive() -> None:
    assert render_chat_body("hi :PARTY: :unknown:", EMOJI) == (
        '<p>hi <img src="/img/emoji/party.gif" class="emoji" alt=":PARTY:" title=":PARTY:"> :unknown:</p>'
    )


def test_only_markup_leaves_an_empty_body() -> None:
    assert render_chat_body("<script>alert(1)</script>") == ""
    assert render_chat_body("   ") == ""


def test_actions_are_rendered_without_sanitizing() -> None:
    assert render_markdown("**bob** has been removed from chat.") == (
        "<p><strong>bob</strong> has been removed from chat.</p>\n"
    )


@pytest.mark.parametrize(
    ("text", "profane"),
    [
        ("F   u   C  k th1$", True),
        ("sh1t", True),
        ("sh.it happens", True),
        ('{"type":"CHAT","body":"fuck"}', True),
        ("bass fish", False),
        ("assumptions", False),
        ("class assignment", False),
        ("this picture", False),
        ("I like spicy food", False),
        ("Scunthorpe United", False),
        ("peacock suckers", False),
        ('{"type":"CHAT","body":"hello"}', False),
    ],
)
def test_slur_filter(text: str, profane: bool) -> None:
    assert is_profane(text) is profane
