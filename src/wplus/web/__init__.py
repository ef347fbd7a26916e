"""``wplus serve``: a web page (Gradio, the ``web`` extra) for embedding and editing photos, with named API endpoints.

:class:`~wplus.web.service.WebService` does the work without Gradio; :func:`wplus.web.app.build_app` builds the page.
Gradio is imported only inside :func:`~wplus.web.app.build_app`, so this package imports without the extra.
"""
