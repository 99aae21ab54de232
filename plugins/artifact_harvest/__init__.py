"""Artifact Harvest: pull finished asynchronous AI and cloud artifacts into an archive with Airflow 3.3.

One Airflow provider distribution (``artifact-harvest``) holding, per provider, a hook, triggers,
sensors and operators, plus a shared download-and-archive core that knows no provider.
"""

__version__ = "0.1.0"
