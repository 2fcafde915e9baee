from django.apps import AppConfig


class SubmissionConfig(AppConfig):
    name = "groupware.mail.submission"
    label = "submission"
    verbose_name = "Sending mail"

    def ready(self) -> None:
        from accounts.services import ACCOUNT_PROVISIONERS
        from groupware.mail.submission.identities import identity_provision_default

        # Every new personal account gets a default Identity for the owner's login.
        if identity_provision_default not in ACCOUNT_PROVISIONERS:
            ACCOUNT_PROVISIONERS.append(identity_provision_default)
