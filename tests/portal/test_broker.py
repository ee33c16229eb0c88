"""The embedded default broker (portal/broker.py): a worker polling the folder never
finds a message half written (kombu's own transport lets it find an empty file, and
the worker then stops: kombu#1551)."""

import threading
from pathlib import Path

from kombu import Connection

from portal.celery import app


def test_filesystem_means_the_portal_s_transport():
    with Connection("filesystem://") as connection:
        assert type(connection.transport).__module__ == "portal.broker"
    assert app  # portal.celery, which names it, is what every process imports


def test_a_polling_reader_never_sees_a_message_half_written(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder)}
    payload = {"body": "x" * 200_000}  # big enough to take a while to write
    seen, bad, done = [], [], threading.Event()

    def poll():
        while not done.is_set():
            for path in folder.glob("*.msg"):
                try:
                    text = path.read_bytes()
                except FileNotFoundError:
                    continue
                seen.append(path.name)
                if len(text) < 200_000:
                    bad.append((path.name, len(text)))
                path.unlink(missing_ok=True)

    reader = threading.Thread(target=poll)
    reader.start()
    try:
        with Connection("filesystem://", transport_options=options) as connection:
            channel = connection.default_channel
            for _ in range(200):
                channel._put("q", payload)
    finally:
        done.set()
        reader.join()
    leftover = [p for p in Path(folder).iterdir() if p.suffix == ".part"]
    assert not bad, f"half-written messages seen: {bad[:3]}"
    assert seen and not leftover
