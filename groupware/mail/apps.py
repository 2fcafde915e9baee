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
