"""The phone-first pages (work in progress: the pages helper fills this in)."""

from flask import Blueprint

bp = Blueprint("pages", __name__)
