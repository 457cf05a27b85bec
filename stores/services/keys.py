"""What happens to partners' keys after they are issued."""

from django.db.models import F
from django.utils import timezone

from stores.models import PartnerAPIKey


def partner_key_proof_failures_add(*, prefix: str, count: int = 1) -> None:
    """Count wrong postcodes sent with a key, where head office sees them (the admin's
    key list): a partner guessing customers' postcodes shows here before it shows
    anywhere else."""
    PartnerAPIKey.objects.filter(prefix=prefix).update(
        proof_failures=F("proof_failures") + count, proof_failed_at=timezone.now()
    )
