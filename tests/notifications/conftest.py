"""A real HTTP receiver and a real SMTP server, both on loopback, for the notifications."""

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from aiosmtpd.controller import Controller

from apps.notifications.constants import ChannelKind, Event
from apps.notifications.models import Channel, Rule
from apps.notifications.services import channel_secrets_set
from tests.conftest import free_port


@dataclass
class Receiver:
    """What a webhook receiver got (headers, body as JSON), answering with the codes of
    `answers` in turn (then 200)."""

    url: str = ""
    got: list = field(default_factory=list)
    answers: list = field(default_factory=list)

    def bodies(self) -> list[dict]:
        return [json.loads(body) for _, body in self.got]


@pytest.fixture
def receiver():
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            state.got.append((dict(self.headers), body))
            code = state.answers.pop(0) if state.answers else 200
            self.send_response(code)
            self.end_headers()
            self.wfile.write(b"ok" if code < 300 else b"down")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield state
    server.shutdown()
    server.server_close()


class Inbox:
    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(
            {"to": envelope.rcpt_tos, "text": envelope.content.decode("utf8", "replace")}
        )
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp(settings):
    """A real SMTP server on loopback, and Django's mail sent to it."""
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", controller.port
    settings.EMAIL_USE_TLS = False
    yield inbox
    controller.stop()


def webhook(url: str, *, events=(Event.RUN_SUCCEEDED, Event.RUN_FAILED), kind=ChannelKind.WEBHOOK,
            services=(), environments=(), team=None, **rule) -> Rule:  # fmt: skip
    channel = Channel(name=f"{kind}-{url[-12:]}-{len(events)}", kind=kind, team=team)
    channel_secrets_set(channel=channel, url=url)
    channel.save()
    made = Rule.objects.create(name="all", channel=channel, events=list(events), **rule)
    made.services.set(services)
    made.environments.set(environments)
    return made
