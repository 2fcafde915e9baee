"""Sending mail: Identity, EmailSubmission, the relay queue, DKIM and MDN (RFC 8621 §6-7, RFC 9007).

A Django app of its own (label ``submission``) inside the mail package, so its
migrations are independent of the mail store's.
"""
