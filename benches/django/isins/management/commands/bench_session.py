"""Print a sessionid cookie value for superuser 'bench', as a logged-in browser would hold it,
so that wrk can send `Cookie: sessionid=...`."""
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user_model
from django.contrib.sessions.backends.db import SessionStore
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create (or reuse) superuser 'bench' and print a valid sessionid for it."

    def handle(self, **options):
        User = get_user_model()
        user = User.objects.filter(username="bench").first()
        if user is None:
            user = User.objects.create_superuser("bench", "bench@example.com", "bench password")
        # The same keys django.contrib.auth.login() stores in the session.
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        self.stdout.write(session.session_key)
