"""The dashboard's running counts: they follow every way rows change (services, bulk creation, plain
queryset writes, deletes), equal a rebuild from the rows after random and concurrent reviews, and give
the same figures as computing them from every row."""

from __future__ import annotations

import random
import threading
from collections import Counter, defaultdict
from itertools import combinations

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Count

from apps.curation import services
from apps.curation.agreement import LABELS, checker_label, cohen_kappa, percent_agreement, project_agreement
from apps.curation.models import AgreementCount, PairAssignment, PairCount, PreferencePair, ReviewEvent
from apps.curation.selectors import project_review_progress, project_reviewers, project_rounds
from apps.curation.stats import review_stats_compute, review_stats_differences, review_stats_rebuild
from tests.factories import PairFactory, ProjectFactory, SearchTreeFactory, TrainingRoundFactory, UserFactory
from workers.mcts.pairs import PairCandidate

# --- oracles: the figures computed from every row, as the dashboard did before it kept counts ----------


def progress_from_rows(project) -> dict:
    rows = PreferencePair.objects.filter(project=project).values_list("deficiency", "status").annotate(n=Count("id"))
    by_status, by_deficiency = Counter(), defaultdict(Counter)
    for deficiency, status, n in rows:
        by_status[status] += n
        by_deficiency[deficiency or "none"][status] += n
    return {"by_status": dict(by_status), "by_deficiency": {d: dict(c) for d, c in by_deficiency.items()}}


def reviewers_from_rows(project) -> dict:
    rows = (
        ReviewEvent.objects.filter(pair__project=project)
        .values_list("user__username", "action")
        .annotate(n=Count("id"))
    )
    out = defaultdict(dict)
    for username, action, n in rows:
        out[username or "(deleted user)"][action] = n
    return dict(out)


def agreement_from_rows(project) -> dict:
    """The agreement figures as the dashboard computed them before: Python over every decision."""
    decisions = defaultdict(dict)
    for pair_id, user_id, decision in PairAssignment.objects.filter(
        pair__project=project, decision__in=LABELS
    ).values_list("pair_id", "user_id", "decision"):
        decisions[pair_id][user_id] = decision
    pooled_a, pooled_b, human, machine = [], [], [], []
    for votes in decisions.values():
        for u, v in combinations(sorted(votes), 2):
            pooled_a.append(votes[u])
            pooled_b.append(votes[v])
    for pair in PreferencePair.objects.filter(pk__in=list(decisions)):
        label = checker_label(pair)
        if label is not None:
            votes = list(decisions[pair.pk].values())
            human.append(max(LABELS, key=votes.count))
            machine.append(label)
    return {
        "annotators": (len(pooled_a), percent_agreement(pooled_a, pooled_b), cohen_kappa(pooled_a, pooled_b)),
        "checker": (len(human), percent_agreement(human, machine), cohen_kappa(human, machine)),
    }


def assert_counts_match_rows(project):
    assert review_stats_differences(project_id=project.pk) == []
    progress = project_review_progress(project=project)
    expected = progress_from_rows(project)
    assert {s: n for s, n in progress["by_status"] if n} == expected["by_status"]
    assert {
        row["deficiency"]: {s: row[s] for s in PreferencePair.Status.values if s in row}
        for row in progress["by_deficiency"]
    } == expected["by_deficiency"]
    assert progress["total"] == PreferencePair.objects.filter(project=project).count()
    assert {
        p["user"]: {a: p[a] for a in p if a not in ("user", "total")} for p in project_reviewers(project=project)
    } == reviewers_from_rows(project)
    figures, expected = project_agreement(project), agreement_from_rows(project)
    for kind in ("annotators", "checker"):
        got = figures[kind]
        assert (got["pairs"], got["percent"], got["kappa"]) == pytest.approx(expected[kind], nan_ok=True)


# --- every write path moves the counts --------------------------------------------------------------------


def candidate(i: int, deficiency: str = "wrong_value") -> PairCandidate:
    return PairCandidate(
        node_key="n",
        chosen_key="c",
        rejected_key=f"r{i}",
        prefix="[get_weather(",
        chosen="city='Paris')]",
        rejected=f"city='Lyon{i}')]",
        chosen_value=0.9,
        rejected_value=0.1,
        chosen_visits=2,
        rejected_visits=2,
        gap=0.8,
        deficiency=deficiency,
        rejected_span=None,
        chosen_verdict={"valid": True},
        rejected_verdict={"valid": False},
        dedup_key=f"d{i}",
    )


def test_counts_follow_creation_reviews_plain_updates_and_deletes(project):
    round_1 = TrainingRoundFactory(project=project, number=1)
    tree = SearchTreeFactory(project=project, round=round_1)
    assert (
        services.pairs_create_from_tree(
            tree=tree, candidates=[candidate(i) for i in range(3)] + [candidate(3, "wrong_type")]
        )
        == 4
    )
    assert services.pairs_create_from_tree(tree=tree, candidates=[candidate(0)]) == 0  # a duplicate counts nothing
    loose = PairFactory(project=project)  # no round
    assert dict(
        PairCount.objects.filter(project_id=project.pk, round_id=round_1.pk).values_list("deficiency", "n")
    ) == {"wrong_value": 3, "wrong_type": 1}
    progress = project_review_progress(project=project)
    assert (progress["total"], progress["reviewed"]) == (5, 0)
    assert [r["total"] for r in project_rounds(project=project)] == [4]

    user = UserFactory()
    first, second, third, typed = PreferencePair.objects.filter(tree=tree).order_by("id")
    services.pair_approve(pair_id=first.pk, version=1, user=user)
    services.pair_swap(pair_id=second.pk, version=1, user=user)  # deficiency follows the rejected verdict
    services.pair_flag(pair_id=third.pk, version=1, user=user, note="?")
    services.pair_undo(pair_id=third.pk, version=2, user=user)
    services.pair_bulk_review(pair_versions={typed.pk: 1, loose.pk: 1}, user=user, action="reject")
    assert_counts_match_rows(project)
    assert dict(project_review_progress(project=project)["by_status"]) == {
        "pending": 2,
        "approved": 1,
        "edited": 0,
        "rejected": 2,
        "flagged": 0,
    }

    PreferencePair.objects.filter(pk=third.pk).update(status="approved")  # admin, scripts: no service
    PreferencePair.objects.filter(pk=second.pk).update(round=None, deficiency="extra_call")
    first.delete()  # its events and assignment go first, then the pair
    assert_counts_match_rows(project)
    assert project_rounds(project=project)[0]["total"] == 2

    user.delete()  # the events stay, as the deleted user's; the decisions (assignments) go with the user
    assert "(deleted user)" in {p["user"] for p in project_reviewers(project=project)}
    wrong = review_stats_differences(project_id=project.pk)
    assert wrong and all(line.startswith("agreement") for line in wrong)  # the one thing a rebuild must redo
    review_stats_rebuild(project_ids=[project.pk])
    assert_counts_match_rows(project)
    project_id = project.pk
    project.delete()
    assert not PairCount.objects.filter(project_id=project_id).exclude(n=0).exists()


def test_agreement_counts_follow_decisions_swaps_edits_undos_and_skips(project):
    project.review_overlap = 3
    project.save()
    a, b, c = UserFactory(), UserFactory(), UserFactory()
    pair = PairFactory(project=project)  # the checker approves: chosen valid, rejected not
    services.pair_approve(pair_id=pair.pk, version=1, user=a)
    services.pair_approve(pair_id=pair.pk, version=2, user=b)
    figures = project_agreement(project)
    assert figures["annotators"]["pairs"] == 1 and figures["annotators"]["percent"] == 1.0
    assert figures["checker"]["pairs"] == 1 and figures["checker"]["percent"] == 1.0
    services.pair_swap(pair_id=pair.pk, version=3, user=c)  # now the checker rejects it; c did not vote
    assert project_agreement(project)["checker"]["percent"] == 0.0
    services.pair_reject(pair_id=pair.pk, version=4, user=c)  # 2 approve, 1 reject: flagged for a reviewer
    figures = project_agreement(project)
    assert figures["annotators"]["pairs"] == 3 and figures["annotators"]["percent"] == pytest.approx(1 / 3)
    assert [p["annotators"] for p in figures["annotators"]["by_pair"]] == [
        [a.username, b.username],
        [a.username, c.username],
        [b.username, c.username],
    ]
    services.pair_undo(pair_id=pair.pk, version=5, user=c)  # c's vote goes; the pair is unflagged
    services.pair_skip(pair_id=pair.pk, user=b)  # skipping a decided pair takes the decision back
    services.pair_edit(pair_id=pair.pk, version=6, user=a, chosen="city='Paris')]")  # both valid: checker silent
    assert project_agreement(project)["checker"]["pairs"] == 0
    assert_counts_match_rows(project)


def test_random_review_sequences_keep_counts_equal_to_a_rebuild(project):
    """200 random actions by 4 people (review overlap 2) on 12 pairs in 2 rounds, checked after every step."""
    rng = random.Random(7)
    project.review_overlap = 2
    project.save()
    rounds = [TrainingRoundFactory(project=project, number=n) for n in (1, 2)]
    pairs = [
        PairFactory(
            project=project,
            round=rng.choice(rounds + [None]),
            gap=rng.random(),
            deficiency=rng.choice(["wrong_value", "wrong_type", ""]),
        )
        for _ in range(12)
    ]
    people = [UserFactory() for _ in range(4)]
    edits = ["city='Paris')]", "city='Rome')]", "city=3)]"]
    for step in range(200):
        user, pair = rng.choice(people), PreferencePair.objects.get(pk=rng.choice(pairs).pk)
        version = pair.version if rng.random() < 0.9 else max(1, pair.version - 1)  # sometimes stale
        action = rng.choice(
            [
                "approve",
                "reject",
                "approve",
                "reject",
                "flag",
                "swap",
                "edit",
                "undo",
                "skip",
                "lease",
                "bulk",
                "plain_update",
            ]
        )
        try:
            if action == "approve":
                services.pair_approve(pair_id=pair.pk, version=version, user=user)
            elif action == "reject":
                services.pair_reject(pair_id=pair.pk, version=version, user=user)
            elif action == "flag":
                services.pair_flag(pair_id=pair.pk, version=version, user=user, note="look")
            elif action == "swap":
                services.pair_swap(pair_id=pair.pk, version=version, user=user)
            elif action == "edit":
                services.pair_edit(pair_id=pair.pk, version=version, user=user, chosen=rng.choice(edits))
            elif action == "undo":
                services.pair_undo(pair_id=pair.pk, version=version, user=user)
            elif action == "skip":
                services.pair_skip(pair_id=pair.pk, user=user)
            elif action == "lease":
                services.pair_lease_next(project=project, user=user, round_id=rng.choice([None, rounds[0].pk]))
            elif action == "bulk":
                chosen = rng.sample(pairs, 3)
                versions = dict(
                    PreferencePair.objects.filter(pk__in=[p.pk for p in chosen]).values_list("pk", "version")
                )
                services.pair_bulk_review(pair_versions=versions, user=user, action=rng.choice(["approve", "reject"]))
            else:
                PreferencePair.objects.filter(pk=pair.pk).update(deficiency=rng.choice(["wrong_value", "no_call"]))
        except (services.StaleVersion, ValueError):
            pass
        assert review_stats_differences(project_id=project.pk) == [], f"step {step}: {action}"
    assert AgreementCount.objects.filter(project_id=project.pk, kind="annotators").exclude(n=0).exists()
    assert_counts_match_rows(project)
    assert review_stats_rebuild(project_ids=[project.pk]) == {project.pk: []}  # nothing to fix


def test_rebuild_command_fixes_counts_and_check_reports_them(project, capsys):
    user = UserFactory()
    pairs = [PairFactory(project=project) for _ in range(3)]
    services.pair_approve(pair_id=pairs[0].pk, version=1, user=user)
    call_command("rebuild_review_stats", "--check", project=project.name)
    assert "test-project: counts match the rows" in capsys.readouterr().out
    PairCount.objects.filter(project_id=project.pk, status="pending").update(n=40)
    AgreementCount.objects.filter(project_id=project.pk).delete()
    with pytest.raises(CommandError, match="1 project"):
        call_command("rebuild_review_stats", "--check", project=project.name)
    assert "pairs (0, 'wrong_value', 'pending'): 40 ≠ 2" in capsys.readouterr().out
    call_command("rebuild_review_stats")
    out = capsys.readouterr().out
    assert "test-project: 2 counts were rebuilt from the rows" in out
    assert review_stats_differences(project_id=project.pk) == []
    assert project_review_progress(project=project)["total"] == 3
    with pytest.raises(CommandError, match="no project named"):
        call_command("rebuild_review_stats", project="nope")


def test_rebuild_drops_the_counts_of_deleted_projects(project):
    PairFactory(project=project)
    PairCount.objects.create(project_id=987654, round_id=0, deficiency="", status="pending", n=3)
    review_stats_rebuild()
    assert not PairCount.objects.filter(project_id=987654).exists()
    assert review_stats_compute(project_id=project.pk).pairs == {(0, "wrong_value", "pending"): 1}


# --- concurrent reviewers ---------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_concurrent_reviewers_lose_no_count():
    """8 people in threads, each with their own connection, act at once on 6 pairs (review overlap 3):
    every count still equals the rows. On PostgreSQL the writes really overlap (row locks and upserts)."""
    project = ProjectFactory(name="stats-race")
    project.review_overlap = 3
    project.save()
    round_1 = TrainingRoundFactory(project=project, number=1)
    pairs = [PairFactory(project=project, round=round_1) for _ in range(6)]
    people = [UserFactory(username=f"racer{i}") for i in range(8)]
    barrier, errors = threading.Barrier(len(people)), []

    def review(k: int, user):
        rng = random.Random(k)
        try:
            barrier.wait()
            for _ in range(12):
                pair = PreferencePair.objects.get(pk=rng.choice(pairs).pk)
                action = rng.choice(["approve", "reject", "approve", "swap", "edit", "undo", "skip", "flag"])
                try:
                    if action in ("approve", "reject", "swap"):
                        getattr(services, f"pair_{action}")(pair_id=pair.pk, version=pair.version, user=user)
                    elif action == "edit":
                        services.pair_edit(
                            pair_id=pair.pk,
                            version=pair.version,
                            user=user,
                            chosen=rng.choice(["city='Paris')]", "city='Rome')]"]),
                        )
                    elif action == "flag":
                        services.pair_flag(pair_id=pair.pk, version=pair.version, user=user, note="race")
                    elif action == "undo":
                        services.pair_undo(pair_id=pair.pk, version=pair.version, user=user)
                    else:
                        services.pair_skip(pair_id=pair.pk, user=user)
                except (services.StaleVersion, ValueError):
                    pass
        except Exception as error:  # a deadlock or a lost update would land here
            errors.append(repr(error))
        finally:
            connection.close()

    threads = [threading.Thread(target=review, args=(k, u)) for k, u in enumerate(people)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert ReviewEvent.objects.filter(pair__project=project).exclude(action="skip").count() > len(pairs)
    assert_counts_match_rows(project)


def test_pairs_awaiting_adjudication_are_counted_up_to_a_limit(project, monkeypatch):
    from apps.curation import selectors

    for _ in range(3):
        PairFactory(project=project, status="flagged")
    PairFactory(project=project)
    assert selectors.pairs_awaiting_adjudication_count(project=project) == (3, True)
    monkeypatch.setattr(selectors, "COUNT_LIMIT", 2)
    assert selectors.pairs_awaiting_adjudication_count(project=project) == (2, False)
