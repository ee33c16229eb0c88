"""Through a real worker: a real run's end reaches a webhook receiver on loopback, and a
receiver answering 500 gets the same delivery again after the pause, once delivered
never again."""

import time

import pytest

from apps.notifications import messages
from apps.notifications.constants import DELIVERY_HEADER, SIGNATURE_HEADER, DeliveryStatus
from apps.notifications.models import Delivery
from apps.runs.constants import RunStatus
from tests.conftest import wait_for
from tests.factories import ActionFactory
from tests.notifications.conftest import webhook
from tests.runs.helpers import launch, wait_final

pytestmark = [pytest.mark.worker, pytest.mark.django_db(transaction=True)]


def test_a_runs_end_reaches_the_webhook_through_the_worker_retried_once(
    receiver, celery_worker, test_playbooks, local_env, dev
):
    rule = webhook(receiver.url, environments=[local_env])
    receiver.answers = [500]  # down for the first attempt
    action = ActionFactory(playbook_version=test_playbooks["echo"], environments=[local_env])

    run = wait_final(launch(dev, action, local_env))
    assert run.status == RunStatus.SUCCESSFUL
    wait_for(lambda: len(receiver.got) >= 2, timeout=60, message="the retry reached the receiver")
    time.sleep(1)  # nothing more comes: delivered once it was accepted

    assert len(receiver.got) == 2
    (first, first_body), (second, second_body) = receiver.got
    delivery = Delivery.objects.get()
    assert first[DELIVERY_HEADER] == second[DELIVERY_HEADER] == str(delivery.pk)
    assert first_body == second_body
    secret = rule.channel.signing_secret
    assert messages.signature_valid(secret, second_body, second[SIGNATURE_HEADER])
    assert receiver.bodies()[1]["run"]["id"] == run.pk
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DELIVERED, 2)
    assert list(delivery.tries.values_list("response_code", flat=True)) == [500, 200]
