"""The floor: a bare Flask app that answers a small JSON object (gunicorn bench.bare_app:app)."""

from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/ping")
def ping():
    return jsonify(status="ok", service="bare")
