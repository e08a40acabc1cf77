from django.contrib import admin
from django.urls import path

# Only the admin: it is the thing being measured.
urlpatterns = [path("admin/", admin.site.urls)]
