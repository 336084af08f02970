"""Projects: the ones you are a member of, with your role in each."""

from __future__ import annotations

from django.db.models import OuterRef, Subquery, Value
from rest_framework import serializers, viewsets

from apps.projects.models import Membership, Project


class ProjectSerializer(serializers.ModelSerializer):
    role = serializers.ChoiceField(
        choices=Membership.Role.choices,
        source="member_role",
        read_only=True,
        help_text="Your role: annotator < reviewer < admin.",
    )

    class Meta:
        model = Project
        fields = [
            "id",
            "name",
            "description",
            "guidelines",
            "lease_minutes",
            "review_overlap",
            "role",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ProjectViewSet(viewsets.ReadOnlyModelViewSet):
    """Your projects (a superuser sees all, as their admin); another project answers 404."""

    serializer_class = ProjectSerializer
    queryset = Project.objects.none()  # for the schema; the real one is the user's

    def get_queryset(self):
        user = self.request.user
        if not getattr(user, "is_authenticated", False):
            return Project.objects.none()
        if user.is_superuser:
            return Project.objects.annotate(member_role=Value(Membership.Role.ADMIN.value))
        role = Membership.objects.filter(project=OuterRef("pk"), user=user).values("role")[:1]
        return Project.objects.filter(memberships__user=user).annotate(member_role=Subquery(role))
