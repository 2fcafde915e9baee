from django.apps import AppConfig


class MailConfig(AppConfig):
    name = "groupware.mail"
    label = "mail"
    verbose_name = "Mail"

    def ready(self) -> None:
        from accounts.services import ACCOUNT_PROVISIONERS
        from groupware.mail.services.mailboxes import mailboxes_provision_defaults

        # Every new account gets the standard mailboxes (inbox, drafts, sent...).
        if mailboxes_provision_defaults not in ACCOUNT_PROVISIONERS:
            ACCOUNT_PROVISIONERS.append(mailboxes_provision_defaults)

        from accounts.quotas import USAGE_SOURCES
        from groupware.mail.services.counts import email_usage

        # Emails count towards quotas (accounts.quotas; manage.py quota_recompute).
        if email_usage not in USAGE_SOURCES:
            USAGE_SOURCES.append(email_usage)

        from groupware.core.blobs import register_derived_blobs
        from groupware.mail.services.emails import mail_blob_read

        # "p…" blob ids name one MIME part of a stored message (downloads of attachments).
        register_derived_blobs("p", lambda account, blob_id, user: mail_blob_read(account, blob_id, user=user))
