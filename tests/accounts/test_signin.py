"""Signing in: password reset by email, and the limit on failed attempts."""

import re

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client

from tests.factories import PASSWORD, UserFactory

NEW_PASSWORD = "a brand new passphrase 42"


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    # allauth counts attempts in the cache; each test starts (and leaves) it empty.
    cache.clear()
    yield
    cache.clear()


def test_a_forgotten_password_is_reset_by_email(db):
    UserFactory(username="rosa", email="rosa@example.com")
    client = Client()
    assert b'href="/accounts/password/reset/"' in client.get("/accounts/login/").content

    sent = client.post("/accounts/password/reset/", {"email": "rosa@example.com"})

    assert sent.status_code == 302
    (message,) = mail.outbox
    assert message.to == ["rosa@example.com"]
    link = re.search(r"http://testserver(/accounts/password/reset/key/\S+)", message.body)[1]
    form = client.get(link, follow=True)
    assert b'name="password1"' in form.content
    changed = client.post(
        form.redirect_chain[-1][0] if form.redirect_chain else link,
        {"password1": NEW_PASSWORD, "password2": NEW_PASSWORD},
    )
    assert changed.status_code == 302
    assert (
        Client().post("/accounts/login/", {"login": "rosa", "password": PASSWORD}).status_code
        == 200
    )
    signed_in = Client().post("/accounts/login/", {"login": "rosa", "password": NEW_PASSWORD})
    assert signed_in.status_code == 302


def test_a_reset_for_an_unknown_address_reveals_nothing(db):
    response = Client().post("/accounts/password/reset/", {"email": "nobody@example.com"})

    assert response.status_code == 302
    assert all("password/reset/key" not in m.body for m in mail.outbox)


def test_it_says_what_is_wrong_with_a_new_password(db):
    UserFactory(username="rosa", email="rosa@example.com")
    client = Client()
    client.post("/accounts/password/reset/", {"email": "rosa@example.com"})
    link = re.search(r"http://testserver(/accounts/password/reset/key/\S+)", mail.outbox[0].body)[1]
    form_url = client.get(link, follow=True).redirect_chain[-1][0]

    response = client.post(form_url, {"password1": "short", "password2": "other"})

    assert response.status_code == 200
    assert b'class="error"' in response.content


def test_failed_sign_ins_are_limited(db):
    UserFactory(username="rosa")
    client = Client()

    for _ in range(5):
        wrong = client.post("/accounts/login/", {"login": "rosa", "password": "wrong"})
        assert wrong.status_code == 200
        assert b"Too many failed login attempts" not in wrong.content
    limited = client.post("/accounts/login/", {"login": "rosa", "password": PASSWORD})

    assert b"Too many failed login attempts" in limited.content
    assert client.get("/").status_code == 302  # even the right password waits


def test_the_admin_signs_in_through_the_portals_sign_in(db):
    response = Client().get("/admin/login/?next=/admin/")

    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=%2Fadmin%2F"
