"""HTTP API (Django REST framework): views.py handles requests, responses.py shapes responses,
errors.py maps every failure to a JSON error, schema.py builds the OpenAPI document from the registry."""
