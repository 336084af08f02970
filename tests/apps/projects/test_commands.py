"""The commands' project lookup: the named project, or an error that lists the projects there are."""

import pytest
from django.core.management.base import CommandError

from apps.projects.commands import KNOWN_SHOWN, project_or_error
from tests.factories import ProjectFactory


def test_the_named_project_is_found(project):
    assert project_or_error("test-project") == project


def test_an_unknown_name_lists_the_projects(db):
    with pytest.raises(CommandError, match=r"^no project named 'nope' \(projects: none yet\)$"):
        project_or_error("nope")
    ProjectFactory(name="beta")
    ProjectFactory(name="alpha")
    with pytest.raises(CommandError, match=r"^no project named 'Alpha' \(projects: 'alpha', 'beta'\)$"):
        project_or_error("Alpha")


def test_a_long_list_is_cut(db):
    for i in range(KNOWN_SHOWN + 1):
        ProjectFactory(name=f"p{i:02d}")
    with pytest.raises(CommandError) as error:
        project_or_error("nope")
    message = str(error.value)
    assert message.endswith(f"'p{KNOWN_SHOWN - 1:02d}', …)") and f"'p{KNOWN_SHOWN:02d}'" not in message
