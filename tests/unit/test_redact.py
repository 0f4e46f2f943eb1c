"""Credential masking on damaged text, exhaustively for one fault per line: every single bit
flip, every inserted invalid byte or NUL run, every cut, every escaped key character."""

from __future__ import annotations

import json

import pytest

from ingest.accesslog.redact import redact_copied, redact_raw, redact_text

SECRET = "sk-fuzz"
LINE = json.dumps(
    {
        "headers": {"Authorization": f"Bearer {SECRET}-000008", "accept": "*/*"},
        "ts": 1764000000,
        "path": "/spacy/",
        "status": 200,
        "request": ["a"],
        "response": [{"text": "a", "entities": []}],
    }
).encode()


def _leaks(raw: bytes, cap: int | None = None) -> bool:
    return SECRET.encode() in redact_raw(raw, cap)


def test_every_single_bit_flip_leaves_the_credential_masked():
    leaks = []
    for i in range(len(LINE)):
        for bit in range(8):
            damaged = bytearray(LINE)
            damaged[i] ^= 1 << bit
            if _leaks(bytes(damaged)):
                leaks.append((i, bit))
    assert leaks == []


@pytest.mark.parametrize("inserted", [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\0" * 5])
def test_inserted_bytes_anywhere_leave_the_credential_masked(inserted: bytes):
    assert [i for i in range(len(LINE) + 1) if _leaks(LINE[:i] + inserted + LINE[i:])] == []


def test_a_line_cut_anywhere_or_capped_leaves_no_credential_or_part_of_one():
    for cut in range(len(LINE) + 1):
        out = redact_raw(LINE[:cut])
        assert SECRET.encode() not in out and b"sk-fu" not in out, cut
        assert SECRET.encode() not in redact_raw(LINE, cut), cut


def test_escapes_in_the_key_or_the_token_are_seen_through():
    for i, char in enumerate("Authorization"):
        key = "Authorization"[:i] + f"\\u{ord(char):04x}" + "Authorization"[i + 1 :]
        damaged = LINE.replace(b"Authorization", key.encode())[:-1]  # invalid JSON: a reject
        assert b"[redacted]" in redact_raw(damaged) and not _leaks(damaged), key
    escaped = LINE.replace(b"Bearer sk", b"Bearer \\u0073k")
    assert b"\\u0073k-fuzz" not in redact_raw(escaped)


def test_what_is_not_a_credential_is_left_alone():
    text = '{"ts": 1, "path": "/spacy/", "tokens": ["a"], "request_id": "req-1", "text": "risk-free"}'
    assert redact_text(text) == text
    assert redact_copied({"accept": "*/*", "tokens": [1]}) == {"accept": "*/*", "tokens": [1]}


def test_values_copied_into_metadata_are_masked_by_damaged_key_and_by_shape():
    copied = redact_copied(
        {
            "Authorizatimn": "Bearer x",  # one letter flipped: still the key
            "X-Trace": f"Bearer {SECRET}-1",  # by shape, whatever the key
            "url": "https://user:pw@host/p?api_key=k123&page=2",
        }
    )
    assert copied["Authorizatimn"] == "[redacted]"
    assert SECRET not in copied["X-Trace"]
    assert copied["url"] == "https://[redacted]@host/p?api_key=[redacted]&page=2"


def test_query_parameters_that_are_credentials_keep_their_name_and_lose_their_value():
    urls = {
        "https://a.blob.core.windows.net/c/b?sv=2022-11-02&sig=Zm9v%2Bbar%3D&se=2026":
            "https://a.blob.core.windows.net/c/b?sv=2022-11-02&sig=[redacted]&se=2026",
        "/api/f?code=abc==": "/api/f?code=[redacted]",
        "/v1/m?key=AIzq": "/v1/m?key=[redacted]",
        "/o?X-Amz-Credential=AKIQ%2F2026&X-Amz-Signature=fe12":
            "/o?X-Amz-Credential=[redacted]&X-Amz-Signature=[redacted]",
        "/g?x-goog-signature=9f": "/g?x-goog-signature=[redacted]",
        "/cf?Signature=abc~": "/cf?Signature=[redacted]",
        "/r?access_token=at1;token=t2": "/r?access_token=[redacted];token=[redacted]",
    }  # fmt: skip
    assert {url: redact_text(url) for url in urls} == urls
    # JSON's escaped "&" is seen through; the same names outside a query string are left alone
    assert redact_text('{"u": "/a?x=1\\u0026sig=abc"}') == '{"u": "/a?x=1\\u0026sig=[redacted]"}'
    text = '{"code": 200, "key": "ner", "q": "/p?monkey=1&barcode=2&sigma=3"}'
    assert redact_text(text) == text


def test_a_cap_through_a_credential_leaves_no_prefix_of_it():
    # The cut comes after the redaction: a JWT or key id cut short matches no shape any more.
    for token in ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "AKIAZQSEKRETZQ234567"):
        line = json.dumps({"pad": "x" * 100, "headers": {"X-Trace": token}}).encode()
        at = line.index(token.encode())
        for cap in range(at + 1, at + len(token)):
            out = redact_raw(line, cap)
            assert len(out) <= cap and token[:2].encode() not in out[at - 2 :], (cap, out[-30:])
    assert redact_raw("é".encode() * 10, 5) == "éé".encode()  # cut at a character boundary


def test_percent_encoded_names_and_nested_query_strings_are_seen_through():
    urls = {
        "/p?%73ig=abc&x=1": "/p?%73ig=[redacted]&x=1",
        "/p?api%5Fkey=abc": "/p?api%5Fkey=[redacted]",
        "/p?X%2DAmz%2DSignature=fe12": "/p?X%2DAmz%2DSignature=[redacted]",
        # a credential in a query string that is itself a parameter's value (a redirect URL)
        "/login?next=%2Fcb%3Fapi_key%3Dsekrit%26x%3D1": "/login?next=%2Fcb%3Fapi_key%3D[redacted]%26x%3D1",
        "/h?a=Authorization%3A%20Bearer%20abcdefgh1234": "/h?a=Authorization%3A%20[redacted]",
    }  # fmt: skip
    assert {url: redact_text(url) for url in urls} == urls
    # a decoded "&" (%26) inside a value does not end the mask early: the plain view measures it
    assert redact_text("/p?sig=abc%26def&x=1") == "/p?sig=[redacted]&x=1"
    # a percent-escaped JSON key stays a JSON string when masked, so the line still parses
    masked = redact_text('{"api%5Fkey": "abc", "n": 1}')
    assert json.loads(masked) == {"api%5Fkey": "[redacted]", "n": 1}
    # what decodes to nothing secret is left alone, UTF-8 sequences and "%25" included
    for text in ("/p?q=caf%C3%A9&a=%25&monkey=%31", "/x?%6Donkey=1&bar%63ode=2", "100% sure, 50%-off"):
        assert redact_text(text) == text


def test_a_query_string_nested_twice_is_seen_through():
    # A redirect URL inside a redirect URL is percent-encoded twice ("=" is %253D); a login
    # page's ?next= carrying an OAuth callback's does that. Every level is seen through.
    urls = {
        "/login?next=%252Fcb%253Fapi_key%253Dsekrit%2526x%253D1":
            "/login?next=%252Fcb%253Fapi_key%253D[redacted]%2526x%253D1",
        "/p?%2573ig=abc": "/p?%2573ig=[redacted]",
        "/a?next=%25252Fcb%25253Faccess_token%25253Dat1":
            "/a?next=%25252Fcb%25253Faccess_token%25253D[redacted]",
    }  # fmt: skip
    assert {url: redact_text(url) for url in urls} == urls
    for text in ("/p?q=100%2525+sure&monkey=%2531", "/p?q=%25%25"):
        assert redact_text(text) == text


def test_an_encoded_space_does_not_make_ordinary_words_an_auth_scheme():
    # "basic english" or "token classification" in plain text is masked as "<scheme> <token>"
    # only where an auth header could be written out (a raw line); a query string's %20 is
    # not one, and the endpoint path (and the dataset name made from it) must stay readable.
    for text in (
        "/predict?model=basic%20english",
        "/predict?task=token%20classification&lang=en",
        "/search?q=digest%20algorithms",
    ):
        assert redact_text(text) == text
    # an encoded credential still is one: named, or by a shape that is no English word
    assert redact_text("/h?a=Bearer%20abcdefgh1234") == "/h?a=[redacted]"
    assert redact_text("/h?authorization=Basic%20dXNlcjpwYXNz") == "/h?authorization=[redacted]"


def test_credential_headers_and_parameters_of_common_apis_are_masked():
    # Named for what they hold by their platforms: GitLab's PRIVATE-TOKEN header and
    # ?private_token=, Azure API Management's Ocp-Apim-Subscription-Key and ?subscription-key=,
    # Azure Functions' x-functions-key, AWS's X-Amz-Security-Token header, DeepL's ?auth_key=,
    # ?access_key= (ipstack and its kin), a passphrase or passcode, and Zoom's ?pwd= passcode.
    headers = ["PRIVATE-TOKEN", "Ocp-Apim-Subscription-Key", "x-functions-key", "X-Amz-Security-Token",
               "passphrase", "passcode"]  # fmt: skip
    for name in headers:
        line = json.dumps({"ts": 1, "headers": {name: "s3cr3tvalue", "accept": "*/*"}})
        assert "s3cr3tvalue" not in redact_text(line) and "*/*" in redact_text(line), name
        assert redact_copied({name: "s3cr3tvalue"}) == {name: "[redacted]"}
    for name in ("private_token", "subscription-key", "auth_key", "access_key", "accessKey", "pwd"):
        assert redact_text(f"/v4/p?{name}=s3cr3tvalue&page=2") == f"/v4/p?{name}=[redacted]&page=2", name
    # ... and names that only look alike are left alone
    for text in ("/p?pwdx=1&keypad=2&passage=3&subscription=4&functions=5&security=6", '{"accesses": 3}'):
        assert redact_text(text) == text


def test_prose_after_a_scheme_word_is_not_a_credential():
    # "basic", "token" and "digest" are English words: what follows one is a credential only
    # when it looks like one (a digit, "+", "/", "=", or an upper-case letter inside it, as
    # base64 and hex tokens have), so a rejected line's or a mapper's prose stays readable.
    for text in (
        "mapper failed: KeyError: token offsets out of range",
        '{"request": ["I need basic training", "Basic Training for All", "a digest mismatch"]}',
    ):
        assert redact_text(text) == text
    for header in ("Basic dXNlcjpwYXNzd29yZA==", "Token 9944b09199c62bcf9418ad846dd0e4bbdfc6ee4b",
                   "Negotiate YIIGhgYGKwYBBQUCoIIGejCCBnaQ", "basic dxnlcjpwyxnz/wq"):  # fmt: skip
        line = json.dumps({"headers": {"X-Forwarded-Auth": header}})
        assert header.split()[1] not in redact_text(line), header


def test_long_endpoints_and_urls_are_not_kept_in_the_cache():
    # Endpoints and URLs repeat, so their masks are cached; a URL can be long and unique on
    # every line (a query string with data in it): those must not pile up in memory.
    import tracemalloc

    from ingest.accesslog.redact import redact_endpoint

    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(100):
            assert redact_endpoint(f"http://h/p?i={i}&data=" + "x" * 50_000).startswith("http://h/p?i=")
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept < 2_000_000, kept  # 100 keys and values of 50 kB would be 10 MB
    assert redact_endpoint("/p?api_key=abc") == "/p?api_key=[redacted]"


def test_an_escaped_slash_is_seen_through_in_both_views():
    # JSON's "\/" matches no group of either view's pattern: it once raised IndexError in the
    # plain view, failing the whole transform on any rejected line that held one.
    for text in ('{"u": "http:\\/\\/h\\/a?sig=abc"}', '{"u": "http:\\/\\/h\\/a?%73ig=abc"}', "a\\/b"):
        masked = redact_text(text)
        assert "abc" not in masked if "ig=" in text else masked == text
    raw = b'{"path": "\\/spacy\\/", "request": [1, 2]}'
    assert redact_raw(raw) == raw
