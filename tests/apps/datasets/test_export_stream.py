"""The JSON Lines stream outside a transaction (as a web request or the CLI runs it): on PostgreSQL it reads in a
transaction of its own, so that the server-side cursor is not held (materialised) before the first row, and
leaves the connection in autocommit however the stream ends."""

import pytest
from django.db import connection

from apps.datasets.services import snapshot_export, snapshot_freeze


@pytest.mark.django_db(transaction=True)
def test_a_stream_reads_in_its_own_transaction_and_ends_it_however_it_ends(project, make_pair, round_):
    for i in range(5):
        make_pair("approved", round=round_, rejected=f"city='Lyon{i}')]")
    snapshot = snapshot_freeze(project=project, round=round_)
    assert connection.get_autocommit()

    lines = snapshot_export(snapshot, "openai")
    first = next(lines)
    assert connection.in_atomic_block == (connection.vendor == "postgresql")
    lines.close()  # the client went away
    assert connection.get_autocommit() and not connection.in_atomic_block

    whole = list(snapshot_export(snapshot, "openai"))
    assert len(whole) == 5 and whole[0] == first
    assert connection.get_autocommit() and not connection.in_atomic_block
