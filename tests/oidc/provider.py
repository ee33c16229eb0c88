"""A real OpenID Connect provider for the single sign-on tests, on 127.0.0.1.

It is allauth's own identity provider (allauth.idp.oidc) in a process and a database of
its own. Run as `python -m tests.oidc.provider DIR PORT`, where DIR holds:

- key.pem: the RSA key it signs ID tokens with;
- config.json: {"client_id", "client_secret", "redirect_uri", "users": {name: password}};
- groups.json: {username: [group, ...]}, read again at every sign-in, so a test can
  change someone's groups between two sign-ins.
"""

import json
import os
import sys
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        pass


def main(data_dir: Path, port: int) -> None:
    os.environ["OIDC_PROVIDER_DIR"] = str(data_dir)
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.oidc.settings"
    import django

    django.setup()
    from allauth.account.models import EmailAddress
    from allauth.idp.oidc.models import Client
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application

    call_command("migrate", verbosity=0)
    config = json.loads((data_dir / "config.json").read_text())
    for username, password in config["users"].items():
        user = get_user_model().objects.create_user(
            username=username, email=f"{username}@example.com", password=password
        )
        EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    client = Client(
        id=config["client_id"],
        name="Pushbutton",
        secret=make_password(config["client_secret"]),
        skip_consent=True,
    )
    client.set_scopes(["openid", "profile", "email"])
    client.set_redirect_uris([config["redirect_uri"]])
    client.save()
    server = make_server(
        "127.0.0.1", port, get_wsgi_application(), server_class=_Server, handler_class=_QuietHandler
    )
    print(f"ready on {port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
