from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.decorators import api_view
from rest_framework.response import Response

from apps.accounts.permissions import can_run
from apps.catalog.selectors import service_list


class ActionSerializer(serializers.Serializer):
    slug = serializers.CharField()
    label = serializers.CharField()
    description = serializers.CharField()
    kind = serializers.CharField()
    version_field = serializers.CharField(
        help_text="The form field that names the version it deploys (empty: none)."
    )
    environments = serializers.SerializerMethodField()
    form = serializers.JSONField()
    playbook = serializers.SerializerMethodField()

    def get_environments(self, action) -> list[str]:
        user = self.context["request"].user
        return [
            env.slug
            for env in action.environments.all()
            if can_run(user, action=action, environment=env)
        ]

    def get_playbook(self, action) -> dict:
        version = action.playbook_version
        return {
            "path": version.path,
            "commit": version.commit,
            "content_hash": version.content_hash,
        }


class ServiceSerializer(serializers.Serializer):
    slug = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    actions = ActionSerializer(many=True)


@extend_schema(responses=ServiceSerializer(many=True))
@api_view(["GET"])
def catalog(request):
    """Services the user may see, each with its actions and their forms."""
    services = service_list(user=request.user)
    return Response(ServiceSerializer(services, many=True, context={"request": request}).data)


urlpatterns = [path("catalog/", catalog, name="api-catalog")]
