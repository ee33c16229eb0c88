import datetime

import factory

from apps.accounts.models import Grant, Right, Role, Team, User
from apps.catalog.constants import ActionKind
from apps.catalog.models import Action, PlaybookSource, PlaybookVersion, Service
from apps.environments.models import Environment
from apps.runs.models import Run
from apps.runs.services import run_snapshot

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    role = Role.DEVELOPER
    password = factory.django.Password(PASSWORD)


class TeamFactory(factory.django.DjangoModelFactory):
    """A team; `members=[users]` puts them in it."""

    class Meta:
        model = Team
        django_get_or_create = ("slug",)
        skip_postgeneration_save = True

    name = factory.LazyAttribute(lambda t: t.slug.capitalize())
    slug = factory.Sequence(lambda n: f"team{n}")

    @factory.post_generation
    def members(self, create, extracted, **kwargs):
        if create and extracted:
            for user in extracted:
                self.memberships.get_or_create(user=user)


class GrantFactory(factory.django.DjangoModelFactory):
    """A grant; `service=None` is every service."""

    class Meta:
        model = Grant

    team = factory.SubFactory(TeamFactory)
    service = None
    environment = factory.SubFactory("tests.factories.EnvironmentFactory")
    right = Right.RUN


class EnvironmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Environment
        django_get_or_create = ("slug",)

    name = factory.LazyAttribute(lambda e: e.slug.capitalize())
    slug = factory.Sequence(lambda n: f"env{n}")
    order = factory.Sequence(lambda n: n * 10)
    inventory = factory.LazyFunction(
        lambda: {"all": {"hosts": {"localhost": {"ansible_connection": "local"}}}}
    )


class ServiceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Service
        django_get_or_create = ("slug",)

    name = factory.LazyAttribute(lambda s: s.slug)
    slug = factory.Sequence(lambda n: f"service{n}")


class PlaybookSourceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PlaybookSource

    name = factory.Sequence(lambda n: f"source{n}")
    url = "/nonexistent"


class PlaybookVersionFactory(factory.django.DjangoModelFactory):
    """A pinned version without a repository behind it: for tests that never run it."""

    class Meta:
        model = PlaybookVersion

    source = factory.SubFactory(PlaybookSourceFactory)
    commit = factory.Sequence(lambda n: f"{n:040x}")
    path = "site.yml"
    content_hash = "0" * 64
    approved_at = factory.Faker("date_time", tzinfo=datetime.UTC)


class ActionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Action
        skip_postgeneration_save = True

    service = factory.SubFactory(ServiceFactory)
    slug = factory.Sequence(lambda n: f"action{n}")
    label = factory.LazyAttribute(lambda a: a.slug.capitalize())
    kind = ActionKind.DEPLOY
    playbook_version = factory.SubFactory(PlaybookVersionFactory)
    timeout = 300
    form = factory.LazyFunction(list)

    @factory.post_generation
    def environments(self, create, extracted, **kwargs):
        if create and extracted:
            self.environments.set(extracted)


class RunFactory(factory.django.DjangoModelFactory):
    """A Run row as the launch service writes it, without launching anything: what
    `run_snapshot` copies from its action and environment, and who asked (queued unless
    `status` says otherwise; any field may be given)."""

    class Meta:
        model = Run

    action = factory.SubFactory(ActionFactory)
    environment = factory.SubFactory(EnvironmentFactory)
    requested_by = factory.SubFactory(UserFactory)
    requested_by_name = factory.LazyAttribute(lambda r: r.requested_by.username)

    @classmethod
    def _adjust_kwargs(cls, **kwargs):
        snapshot = run_snapshot(action=kwargs["action"], environment=kwargs["environment"])
        return {**snapshot, **kwargs}
