"""Receiving mail: recipient resolution, the delivery service, the LMTP/SMTP listeners.

``groupware.mail.delivery.services.deliver_message`` is the one entry point: the LMTP and
SMTP listeners (``server.py``), the ``serve_mail`` command and local submission call it.
"""
