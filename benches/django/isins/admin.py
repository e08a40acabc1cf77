from django.contrib import admin

from .models import Isin


@admin.register(Isin)
class IsinAdmin(admin.ModelAdmin):
    # What a team would ship: stock changelist, Django's default (icontains) search and
    # filters, the default full result count. No tuning on purpose.
    list_display = ("isin", "name", "lei", "country", "active", "first_seen", "last_seen")
    search_fields = ("isin", "name", "lei")
    list_filter = ("country", "active")
    list_per_page = 50
    ordering = ("isin",)
