"""SimpleAuthManager with one DAG withheld from one user.

SimpleAuthManager authorises by role only: a viewer may read every DAG (teams exist only in multi-team mode),
so it cannot express "this user may not read that DAG". This subclass adds exactly that, to test the 403 path
of the Artifacts endpoints through the auth manager interface Airflow itself calls.
"""

from __future__ import annotations

from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager

RESTRICTED_USER = "restricted"
HIDDEN_DAG = "minimax_generate_speech"


class OneDagHiddenAuthManager(SimpleAuthManager):
    def is_authorized_dag(self, *, method, user, access_entity=None, details=None) -> bool:
        if user.username == RESTRICTED_USER and details is not None and details.id == HIDDEN_DAG:
            return False
        return super().is_authorized_dag(method=method, user=user, access_entity=access_entity, details=details)
