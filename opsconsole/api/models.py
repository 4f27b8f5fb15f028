from django.db import models


class IdempotencyRecord(models.Model):
    """The answer to one request sent with an ``Idempotency-Key``: the same key from the
    same token gets this answer again instead of a second action.

    Keyed by the token's hash, not the token row, so a record never outlives the need for
    a join; kept a day (the sweep deletes older ones).
    """

    token_sha256 = models.CharField(max_length=64)
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=512)
    # The request body's hash: the same key with another body is a client bug, refused.
    request_sha256 = models.CharField(max_length=64)
    # Null while the first request is still being answered.
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.BinaryField(blank=True, default=b"")
    content_type = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["token_sha256", "key"], name="idempotency_once")
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.path} ({self.key})"
