"""The buyer's page: a small Cloud Marketplace for the sandbox, served by the emulator.

    GET /marketplace                 the first provider's page
    GET /marketplace/{provider}      products with their plans and prices, the orders, the clock

The page is rendered from the emulator's state; every action is a `fetch` from the page's own
origin to the control API with a JSON body (`/emulator/v1/...`), the same calls the CLI makes:
"Subscribe" purchases the plan, mints the sign-up JWT and, as Google does, POSTs it as the
`x-gcp-marketplace-token` form field to the product's `signupUrl`; "Manage on provider" posts a
fresh JWT to `loginUrl` (or `signupUrl` when no login URL is set); "Change plan", "Cancel" and the
clock buttons call their control endpoints and reload the page.
"""
