"""The embedded default broker: kombu's filesystem transport, its messages written whole.

kombu writes a message's file in place (created, then written): a worker polling the
folder in between moves the empty file away, fails to decode it and stops with
"Unrecoverable error: JSONDecodeError" (kombu#1551; seen with two workers and a beat
each second). Here a message is written under a name no worker takes, then renamed
into place, which is atomic on one filesystem. portal/celery.py makes `filesystem://`
mean this transport."""

import os
import uuid
from time import monotonic

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        """Put `payload` onto `queue`: written to `<name>.part`, then renamed to the
        `<name>` workers look for (`<time>_<uuid>.<queue>.msg`, as kombu names it)."""
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        path = os.path.join(self.data_folder_out, name)
        try:
            with open(f"{path}.part", "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(f"{path}.part", path)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {path!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel
