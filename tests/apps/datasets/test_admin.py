"""The snapshot admin: read-only pages with the row count, the hash, and how to export."""

from django.urls import reverse

from apps.datasets.services import snapshot_freeze
from tests.factories import UserFactory


def test_snapshot_pages_show_rows_hash_and_export_hint(client, project, make_pair, round_):
    make_pair("approved", round=round_)
    snapshot = snapshot_freeze(project=project, round=round_)
    client.force_login(UserFactory(username="admin", is_staff=True, is_superuser=True))

    listing = client.get(reverse("admin:datasets_datasetsnapshot_changelist")).content.decode()
    assert snapshot.content_hash[:12] in listing and "round 1" in listing

    page = client.get(reverse("admin:datasets_datasetsnapshot_change", args=[snapshot.pk])).content.decode()
    assert snapshot.content_hash in page and "1 frozen pairs" in page
    assert f"export_dataset --project &#x27;test-project&#x27; --snapshot {snapshot.pk} --format trl" in page
    assert 'name="_save"' not in page  # nothing to save: the snapshot is frozen

    rows_url = reverse("admin:datasets_snapshotpair_changelist") + f"?snapshot__id__exact={snapshot.pk}"
    assert rows_url.replace("&", "&amp;") in page or rows_url in page
    rows = client.get(rows_url)
    assert rows.status_code == 200 and "1 snapshot pair" in rows.content.decode()
