"""The WSGI entry point: `gunicorn wsgi:app`; `flask --app wsgi ...` runs the commands of app.cli."""

from app.cli import application

app = application()
