"""Server-rendered pages (Jinja2) for people who prefer a browser to the conda-repo CLI."""

from taipan.web.ui.routes import router

__all__ = ["router"]
