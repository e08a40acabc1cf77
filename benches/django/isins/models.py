from django.db import models


class Isin(models.Model):
    """One ISIN, the columns isinbeat's browser shows."""

    isin = models.CharField(max_length=12, primary_key=True)
    name = models.CharField(max_length=255, blank=True, null=True)
    lei = models.CharField(max_length=20, null=True, db_index=True)
    country = models.CharField(max_length=2, db_index=True)
    active = models.BooleanField(default=True)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField(null=True)

    def __str__(self):
        return self.isin
