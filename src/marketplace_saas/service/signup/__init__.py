"""Sign-up: who the visitor is (`visitor`), the claim and its approval (`claim`), and what the
pages show afterwards (`status`). The names the web page uses are re-exported here."""

from marketplace_saas.service.signup.claim import (
    ACTOR,
    RETRY_APPROVAL_AFTER,
    SignupStart,
    begin_signup,
    complete_signup,
    recognise,
)
from marketplace_saas.service.signup.status import (
    CustomerOverview,
    SignupStatus,
    customer_overview,
    signup_status,
)
from marketplace_saas.service.signup.visitor import (
    SANDBOX_AUDIENCE,
    InvalidForm,
    SignupError,
    SignupRefused,
    SignupUnavailable,
    audience,
    identify,
    purchases_of,
    verifier_for,
)

__all__ = [
    "ACTOR",
    "RETRY_APPROVAL_AFTER",
    "SANDBOX_AUDIENCE",
    "CustomerOverview",
    "InvalidForm",
    "SignupError",
    "SignupRefused",
    "SignupStart",
    "SignupStatus",
    "SignupUnavailable",
    "audience",
    "begin_signup",
    "complete_signup",
    "customer_overview",
    "identify",
    "purchases_of",
    "recognise",
    "signup_status",
    "verifier_for",
]
