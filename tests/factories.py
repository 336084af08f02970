"""Factories for the models every test needs."""

import factory
from django.contrib.auth import get_user_model

from apps.projects.models import Membership, Project
from workers.llm.base import BaseBackend, Sample


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw-for-tests")


class ProjectFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Project
        django_get_or_create = ("name",)

    name = factory.Sequence(lambda n: f"project-{n}")


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    project = factory.SubFactory(ProjectFactory)
    user = factory.SubFactory(UserFactory)
    role = Membership.Role.ANNOTATOR


# --- review data: tools, queries, rounds, trees, pairs ------------------------------------------------

WEATHER_PARAMETERS = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


class ToolFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "catalog.Tool"
        django_get_or_create = ("project", "name", "schema_hash")

    project = factory.SubFactory(ProjectFactory)
    name = "get_weather"
    description = "Current weather in a city."
    parameters = factory.LazyFunction(lambda: dict(WEATHER_PARAMETERS))
    schema_hash = factory.LazyAttribute(lambda o: f"hash-{o.name}")


class QueryFactory(factory.django.DjangoModelFactory):
    """A query offering `get_weather` (in its project), whose right answer is get_weather(city='Paris')."""

    class Meta:
        model = "catalog.Query"
        skip_postgeneration_save = True

    project = factory.SubFactory(ProjectFactory)
    external_id = factory.Sequence(lambda n: f"q-{n}")
    source = "test"
    messages = factory.LazyFunction(lambda: [{"role": "user", "content": "What is the weather in Paris?"}])
    ground_truth = factory.LazyFunction(lambda: [{"get_weather": {"city": ["Paris"]}}])
    content_hash = factory.Sequence(lambda n: f"content-{n}")

    @factory.post_generation
    def tools(self, create, extracted, **kwargs):
        if not create:
            return
        from apps.catalog.models import QueryTool

        for position, tool in enumerate(extracted or [ToolFactory(project=self.project)]):
            QueryTool.objects.create(query=self, tool=tool, position=position)


class TrainingRoundFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "training.TrainingRound"

    project = factory.SubFactory(ProjectFactory)
    number = factory.Sequence(lambda n: n + 1)
    state = "reviewing"


class SearchTreeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "search.SearchTree"

    project = factory.SubFactory(ProjectFactory)
    query = factory.SubFactory(QueryFactory, project=factory.SelfAttribute("..project"))
    status = "done"


class TreeNodeFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "search.TreeNode"

    tree = factory.SubFactory(SearchTreeFactory)
    parent = None
    key = factory.Sequence(lambda n: f"key-{n}")
    depth = factory.LazyAttribute(lambda o: o.parent.depth + 1 if o.parent else 0)
    fragment = ""
    visits = 1
    value_sum = 0.0


def _verdict(output: str, query) -> dict | None:
    from rewards.checker import check

    tools = [tool.as_openai() for tool in query.ordered_tools()]
    return check(output, query.ground_truth, tools).as_dict() if query.ground_truth is not None else None


class PairFactory(factory.django.DjangoModelFactory):
    """A pending pair whose chosen branch is right (city='Paris') and rejected one a wrong value (Lyon),
    with the checker's real verdicts (the rejected one's span covers 'Lyon')."""

    class Meta:
        model = "curation.PreferencePair"

    project = factory.SubFactory(ProjectFactory)
    query = factory.SubFactory(QueryFactory, project=factory.SelfAttribute("..project"))
    prefix = "[get_weather("
    chosen = "city='Paris')]"
    rejected = "city='Lyon')]"
    chosen_value = 0.9
    rejected_value = 0.2
    chosen_visits = 3
    rejected_visits = 2
    gap = factory.LazyAttribute(lambda o: o.chosen_value - o.rejected_value)
    deficiency = "wrong_value"
    chosen_verdict = factory.LazyAttribute(lambda o: _verdict(o.prefix + o.chosen, o.query))
    rejected_verdict = factory.LazyAttribute(lambda o: _verdict(o.prefix + o.rejected, o.query))
    dedup_key = factory.Sequence(lambda n: f"dedup-{n}")


class CheckpointFactory(factory.django.DjangoModelFactory):
    """A checkpoint row; pass `path=tiny_model_dir` where its tokenizer or model is loaded."""

    class Meta:
        model = "training.Checkpoint"

    project = factory.SubFactory(ProjectFactory)
    name = factory.Sequence(lambda n: f"checkpoint-{n}")
    path = "/nonexistent/checkpoint"
    kind = "tiny"


class AnsweringBackend(BaseBackend):
    """A policy that answers every prompt with `answer(prompt)`, `n` times (a stand-in generation backend)."""

    name = "answering"

    def __init__(self, answer):
        self.answer = answer

    def generate(self, prompts, params):
        return [[Sample(text=self.answer(p), finish_reason="stop") for _ in range(params.n)] for p in prompts]
