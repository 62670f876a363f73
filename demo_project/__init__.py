# Load the Celery app with Django so @shared_task uses it (Celery's Django convention).
from demo_project.celery import app as celery_app

__all__ = ["celery_app"]
