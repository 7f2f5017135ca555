"""A white-label tenant's custom CSS: what the check allows and refuses (tinycss2 within size caps), and
its stylesheet, served from a cache with an ETag and never checked again per request."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.clock import utcnow
from app.tenants import stylesheet
from app.tenants.models import Tenant
from app.tenants.service import create_tenant
from app.validators import MAX_CSS_CHARS, MAX_CSS_DEPTH, MAX_CSS_RULES, css_problems

from .support import update_tenant

BRANDING = "/api/v1/tenants/current/branding"
STYLESHEET = "/dashboard/tenant.css"
URL_PROBLEM = "only https: and data:image URLs are allowed in url()"
DEPTH_PROBLEM = f"Blocks and functions may be nested at most {MAX_CSS_DEPTH} deep."
CSS_CHARACTERS = "a-_:;.,#@!*/\\'\"(){}[]<>% \n\t0123456789eu+"


def nested(depth: int) -> str:
    """Rules nested `depth` deep (CSS nesting), each block a level."""
    return "a { " * depth + "color: red; " + "} " * depth


class TestCheck:
    @pytest.mark.parametrize(
        "css",
        [
            "",
            ".header { background: url('https://cdn.example.com/bg.png') #fff; } /* brand */",
            "@media (max-width: 600px) { .nav { display: none } }",
            "@font-face { font-family: Brand; src: url(https://cdn.example.com/b.woff2) format('woff2') }",
            "a { background: url(data:image/png;base64,iVBORw0KGgo=) }",
            "a { background: url() }",
            "a { background: image-set('https://a.example/a.png' 1x, url(https://a.example/b.png) 2x) }",
            "a { width: calc((100% - (2 * 10px)) / 3) }",
            "a[href^='https'] { color: #123 }",
            "a { content: 'expression is a word' }",
            "a { z-index: " + "9" * 50 + " }",
            "a{}" * MAX_CSS_RULES,
            nested(MAX_CSS_DEPTH),
            "a { color: red }" + " " * (MAX_CSS_CHARS - 16),
        ],
    )
    def test_allowed(self, css):
        assert css_problems(css) == []

    @pytest.mark.parametrize(
        ("css", "problem"),
        [
            ("a { background: image-set('http://evil.example.com/a.png' 1x) }", URL_PROBLEM),
            ('a { background: -webkit-image-set("//evil.example.com/a.png" 1x) }', URL_PROBLEM),
            ("a { background: image('http://evil.example.com/a.png') }", URL_PROBLEM),
            ("@font-face { src: src('http://evil.example.com/f.woff') }", URL_PROBLEM),
            ("a { background: IMAGE-SET('data:image/svg+xml;base64,PHN2Zz4=' 1x) }", URL_PROBLEM),
            ("a { background: u/**/rl(http://evil.example.com/a.png) }", URL_PROBLEM),
            ("a { background: url(  'http://evil.example.com' ) }", URL_PROBLEM),
            ("a { background: url(data:image/svg+xml;base64,PHN2Zz4=) }", URL_PROBLEM),
            ("a { width: expr/**/ession(alert(1)) }", "expression() is not allowed"),
            ("a { width: EXPRESSION\t(alert(1)) }", "expression() is not allowed"),
            ("a { behavior : url(x.htc) }", "behaviors and bindings are not allowed"),
            ("@IMPORT 'x.css';", "@import is not allowed"),
            ("a { background: url(JavaScript:alert(1)) }", "script URLs are not allowed"),
            ("a { color: red }\x0c\x01", "control characters are not allowed"),
            ("a { z-index: " + "9" * 51 + " }", "numbers of more than 50 digits are not allowed"),
            ("a{}" * (MAX_CSS_RULES + 1), f"At most {MAX_CSS_RULES:,} rules."),
            (nested(MAX_CSS_DEPTH + 1), DEPTH_PROBLEM),
            ("(" * 40_000, DEPTH_PROBLEM),
            ("a { width: calc(" + "(" * MAX_CSS_DEPTH + "1px" + ")" * MAX_CSS_DEPTH + ") }", DEPTH_PROBLEM),
            ("a" * (MAX_CSS_CHARS + 1), f"At most {MAX_CSS_CHARS:,} characters."),
        ],
    )
    def test_refused(self, css, problem):
        assert problem in css_problems(css)

    def test_the_old_pathological_input_is_accepted_only_if_harmless(self):
        assert css_problems("/*" * (MAX_CSS_CHARS // 2)) == []
        # A comment hides nothing from the check.
        assert css_problems("a{}/*" + "/*" * (MAX_CSS_CHARS // 2 - 10) + "url(http://x)") == [URL_PROBLEM]

    @settings(max_examples=300, deadline=None, derandomize=True)
    @given(st.text(alphabet=st.sampled_from(list(CSS_CHARACTERS)), max_size=300))
    def test_any_text_gets_an_answer(self, css):
        """The tokenizer never fails: whatever the text, the answer is a list of problems."""
        problems = css_problems(css)
        assert isinstance(problems, list) and all(isinstance(problem, str) for problem in problems)


@pytest.fixture
def white_label(app, make_user, headers_for):
    """An enterprise tenant (white label) and its owner's headers."""
    tenant = create_tenant("Big Corp", "bigcorp", plan="enterprise")
    return tenant, headers_for(make_user(tenant, "owner"))


@pytest.fixture
def checks(monkeypatch):
    """Count the checks of stored CSS the stylesheet makes."""
    counted = []
    check = stylesheet.css_problems

    def counting(css):
        counted.append(css)
        return check(css)

    monkeypatch.setattr(stylesheet, "css_problems", counting)
    return counted


def get_stylesheet(client, slug="bigcorp", **headers):
    return client.get(STYLESHEET, query_string={"tenant": slug}, headers=headers)


class TestStylesheet:
    def test_saving_refuses_what_the_check_refuses(self, client, white_label):
        _tenant, headers = white_label
        for css in ("a{}" * (MAX_CSS_RULES + 1), "x" * (MAX_CSS_CHARS + 1), nested(MAX_CSS_DEPTH + 1)):
            response = client.patch(BRANDING, headers=headers, json={"customCss": css})
            assert response.status_code == 422 and "customCss" in response.json["error"]["details"]
        assert Tenant.objects.get(slug="bigcorp").branding.custom_css is None

    def test_it_is_served_with_validators_for_caches(self, client, white_label):
        _tenant, headers = white_label
        css = ".header { color: #123456 }"
        assert client.patch(BRANDING, headers=headers, json={"customCss": css}).status_code == 200
        response = get_stylesheet(client)
        assert response.status_code == 200 and response.get_data(as_text=True) == css
        assert response.mimetype == "text/css"
        assert response.headers["ETag"]
        assert response.cache_control.public and response.cache_control.no_cache
        assert {"Host", "X-Tenant-Id"} <= set(response.vary)
        again = get_stylesheet(client, **{"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304 and again.get_data() == b""

    def test_requests_never_check_it_again(self, client, white_label, checks):
        _tenant, headers = white_label
        assert (
            client.patch(BRANDING, headers=headers, json={"customCss": "a { color: red }"}).status_code == 200
        )
        first = get_stylesheet(client)
        for _ in range(25):
            assert get_stylesheet(client).headers["ETag"] == first.headers["ETag"]
        assert len(checks) == 1
        assert (
            client.patch(BRANDING, headers=headers, json={"customCss": "a { color: blue }"}).status_code
            == 200
        )
        changed = get_stylesheet(client)
        assert changed.get_data(as_text=True) == "a { color: blue }"
        assert changed.headers["ETag"] != first.headers["ETag"]
        assert get_stylesheet(client, **{"If-None-Match": first.headers["ETag"]}).status_code == 200
        assert len(checks) == 2

    def test_css_stored_by_an_older_version_is_not_served_if_it_fails_the_check(self, client, white_label):
        tenant, _headers = white_label
        update_tenant(tenant, set__branding__custom_css="a{}" * (MAX_CSS_RULES + 1), set__updated_at=utcnow())
        response = get_stylesheet(client)
        assert response.status_code == 200 and response.get_data() == b""

    def test_without_white_label_nothing_is_served(self, client, white_label):
        tenant, headers = white_label
        assert (
            client.patch(BRANDING, headers=headers, json={"customCss": "a { color: red }"}).status_code == 200
        )
        update_tenant(tenant, set__features={"whiteLabel": False})
        assert get_stylesheet(client).get_data() == b""

    def test_it_needs_a_tenant(self, client, white_label):
        assert client.get(STYLESHEET).status_code == 404
        assert get_stylesheet(client, slug="nobody").status_code == 404
