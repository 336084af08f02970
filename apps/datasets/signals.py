"""Storage clean-up: a SnapshotFile row deleted in any way (its snapshot's or its project's delete, in the admin
or a queryset) takes its bytes off the storage once the delete commits.

A receiver rather than a service: cascades and queryset deletes call no model method, but Django's collector
sends post_delete for every row it deletes (and, since a receiver exists, loads the rows to do so).
"""

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from .models import SnapshotFile
from .services.files import snapshot_file_discard


@receiver(post_delete, sender=SnapshotFile, dispatch_uid="datasets.snapshot_file_deleted")
def snapshot_file_deleted(sender, instance: SnapshotFile, using: str, **kwargs) -> None:
    if not instance.file:
        return  # never written (pending, running or failed)
    storage, name = instance.file.storage, instance.file.name
    # After the commit: a delete rolled back keeps its file.
    transaction.on_commit(lambda: snapshot_file_discard(storage=storage, name=name), using=using)
