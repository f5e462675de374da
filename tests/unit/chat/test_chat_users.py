from __future__ import annotations

import base64

from owncast_fast.chat.users import clean_display_name, generated_name, is_forbidden, new_access_token, new_id

BLOCKED = ["owncast", "operator", "admin", "system"]


def test_access_token_is_44_url_safe_characters() -> None:
    tokens = {new_access_token() for _ in range(100)}
    assert len(tokens) == 100
    for token in tokens:
        assert len(token) == 44 and token.endswith("=")
        assert len(base64.urlsafe_b64decode(token)) == 32


def test_ids_are_short_and_url_safe() -> None:
    assert all(len(new_id()) == 9 and new_id().replace("_", "").replace("-", "").isalnum() for _ in range(50))


def test_forbidden_check_is_owncasts_inverted_substring() -> None:
    assert is_forbidden("adm", BLOCKED)
    assert not is_forbidden("Admin", BLOCKED)
    assert not is_forbidden("admin123", BLOCKED)
    assert is_forbidden("admin", BLOCKED)
    assert is_forbidden("", BLOCKED)
    assert is_forbidden("", [])


def test_clean_name_strips_markup_and_cuts_to_30_code_points() -> None:
    assert clean_display_name("<b>bob</b>\r") == "bob"
    assert clean_display_name("  é" * 20) == ("  é" * 10).strip()
    assert len(clean_display_name("x" * 100)) == 30


def test_generated_names_use_the_suggestions_only_from_ten() -> None:
    few = ["one", "two"]
    assert generated_name(few) not in few
    assert "-" in generated_name(few)
    many = [f"name{i}" for i in range(10)]
    assert generated_name(many) in many
